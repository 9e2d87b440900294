package ociregistry_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rotor-dev/rotor/internal/ociimage"
	"github.com/rotor-dev/rotor/internal/ociregistry"
)

func TestCheckListenAddr(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5000", true},
		{"localhost:5000", true},
		{"[::1]:5000", true},
		{"127.0.0.1:0", true},
		{":5000", false},
		{"0.0.0.0:5000", false},
		{"192.168.1.10:5000", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if err := ociregistry.CheckListenAddr(tt.addr); (err == nil) != tt.ok {
				t.Errorf("CheckListenAddr(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
			}
		})
	}
}

// TestPushPull pushes a layout built from a fake binary and pulls it back.
func TestPushPull(t *testing.T) {
	h, err := ociregistry.New(ociregistry.Config{Dir: filepath.Join(t.TempDir(), "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h) // binds 127.0.0.1
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	layoutDir := filepath.Join(t.TempDir(), "images")
	want := writeLayout(t, layoutDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pushed, err := ociimage.Push(ctx, layoutDir, host, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pushed) != 1 || pushed[0].Ref != host+"/rotor:v1" || pushed[0].Digest != want {
		t.Fatalf("pushed %+v, want %s/rotor:v1 at %s", pushed, host, want)
	}
	for _, ref := range []string{pushed[0].Ref, pushed[0].Pinned} {
		t.Run(ref, func(t *testing.T) { checkPull(t, ref, want) })
	}
	// A tag override pushes the same digest under another tag.
	again, err := ociimage.Push(ctx, layoutDir, host, "dev")
	if err != nil || again[0].Ref != host+"/rotor:dev" || again[0].Digest != want {
		t.Errorf("push with override = %+v, %v", again, err)
	}
}

func writeLayout(t *testing.T, dir string) v1.Hash {
	t.Helper()
	var bins []ociimage.Binary
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		pl, err := ociimage.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		bins = append(bins, ociimage.Binary{Platform: pl, Data: []byte("fake binary for " + p)})
	}
	spec := ociimage.Spec{Name: "rotor", Epoch: time.Unix(1700000000, 0), Version: "v1"}
	idx, err := ociimage.Index(spec, bins)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociimage.WriteLayout(dir, map[string]v1.ImageIndex{"rotor": idx}, "v1"); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func checkPull(t *testing.T, ref string, want v1.Hash) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d != want {
		t.Errorf("pulled index %s, want %s", d, want)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 2 {
		t.Fatalf("index manifest %+v, %v", im, err)
	}
	// Reading every layer proves the blobs, not only the manifests, arrived.
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateLayers(img); err != nil {
			t.Errorf("%s: %v", d.Platform, err)
		}
	}
}

func validateLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		want, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		got, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("layer %s served content hashing to %s", want, got)
		}
	}
	return nil
}
