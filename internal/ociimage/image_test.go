package ociimage

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func mustPlatform(t *testing.T, s string) v1.Platform {
	t.Helper()
	p, err := ParsePlatform(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testSpec() Spec {
	return Spec{Name: "rotor-propeller", Epoch: testEpoch, CABundle: []byte("certs"),
		Source: "https://github.com/rotor-dev/rotor", Revision: "abc123", Version: "v1.2.3"}
}

func testBins(t *testing.T) []Binary {
	return []Binary{
		{Platform: mustPlatform(t, "linux/amd64"), Data: []byte("amd64 binary")},
		{Platform: mustPlatform(t, "linux/arm64"), Data: []byte("arm64 binary")},
	}
}

func indexDigest(t *testing.T, spec Spec, bins []Binary) v1.Hash {
	t.Helper()
	idx, err := Index(spec, bins)
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    v1.Platform
		wantErr bool
	}{
		{in: "linux/amd64", want: v1.Platform{OS: "linux", Architecture: "amd64"}},
		{in: "linux/arm64", want: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{in: "linux/arm/v7", want: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{in: "windows/amd64", wantErr: true},
		{in: "linux", wantErr: true},
		{in: "linux/amd64/v2/x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlatform(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIndexDigests(t *testing.T) {
	ref := indexDigest(t, testSpec(), testBins(t))
	changed := func(f func(*Spec, []Binary)) (Spec, []Binary) {
		s, b := testSpec(), testBins(t)
		f(&s, b)
		return s, b
	}
	tests := []struct {
		name string
		edit func(*Spec, []Binary)
		same bool
	}{
		{"same inputs", func(*Spec, []Binary) {}, true},
		{"platform order", func(_ *Spec, b []Binary) { b[0], b[1] = b[1], b[0] }, true},
		{"one binary byte", func(_ *Spec, b []Binary) { b[1].Data = []byte("arm64 binarz") }, false},
		{"ca bundle", func(s *Spec, _ []Binary) { s.CABundle = nil }, false},
		{"epoch", func(s *Spec, _ []Binary) { s.Epoch = s.Epoch.Add(1e9) }, false},
		{"revision label", func(s *Spec, _ []Binary) { s.Revision = "def456" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := changed(tt.edit)
			if got := indexDigest(t, s, b); (got == ref) != tt.same {
				t.Errorf("digest %s vs %s: want same=%v", got, ref, tt.same)
			}
		})
	}
}

func TestIndexManifests(t *testing.T) {
	idx, err := Index(testSpec(), testBins(t))
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range im.Manifests {
		got = append(got, d.Platform.String())
		if d.MediaType != types.OCIManifestSchema1 || d.ArtifactType != "" {
			t.Errorf("%s: manifest media type %s, artifact type %q; want an OCI image manifest without artifact type", d.Platform, d.MediaType, d.ArtifactType)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64/v8"}; !reflect.DeepEqual(got, want) {
		t.Errorf("platforms %v, want %v", got, want)
	}
}

func TestImageConfig(t *testing.T) {
	idx, err := Index(testSpec(), testBins(t))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		t.Run(d.Platform.String(), func(t *testing.T) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, img, *d.Platform)
		})
	}
}

func checkImage(t *testing.T, img v1.Image, p v1.Platform) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture || cf.Variant != p.Variant {
		t.Errorf("config platform %s/%s/%s, want %s", cf.OS, cf.Architecture, cf.Variant, p)
	}
	c := cf.Config
	if c.User != "65532:65532" || !reflect.DeepEqual(c.Entrypoint, []string{"/rotor-propeller"}) ||
		c.WorkingDir != "/" || !reflect.DeepEqual(c.Env, []string{"PATH=/"}) || c.Cmd != nil {
		t.Errorf("config %+v", c)
	}
	if !cf.Created.Equal(testEpoch) {
		t.Errorf("created %v, want %v", cf.Created, testEpoch)
	}
	wantLabels := map[string]string{LabelTitle: "rotor-propeller", LabelSource: "https://github.com/rotor-dev/rotor", LabelRevision: "abc123", LabelVersion: "v1.2.3"}
	if !reflect.DeepEqual(c.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", c.Labels, wantLabels)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 2 {
		t.Fatalf("manifest %+v", m)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s", l.MediaType)
		}
	}
	if len(cf.History) != 2 || !cf.History[1].Created.Equal(testEpoch) {
		t.Errorf("history %+v", cf.History)
	}
}
