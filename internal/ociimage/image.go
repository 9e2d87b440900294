package ociimage

import (
	"fmt"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Label keys set on every image config.
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelTitle    = "org.opencontainers.image.title"
)

// Spec is everything but the binaries that goes into one binary's images.
// Equal Specs and binaries give equal digests.
type Spec struct {
	// Name is the binary's name: the file /<Name> and the entrypoint.
	Name string
	// Epoch is the time written into every tar header and the config's
	// Created, normally the commit time (SOURCE_DATE_EPOCH).
	Epoch time.Time
	// CABundle becomes /etc/ssl/certs/ca-certificates.crt; nil leaves it out.
	CABundle []byte
	// Source, Revision and Version fill the labels of the same names
	// (repository URL, commit, version or tag); empty ones are left out.
	Source, Revision, Version string
}

// Binary is a binary compiled for one platform.
type Binary struct {
	Platform v1.Platform
	Data     []byte
}

// ParsePlatform parses "linux/<arch>[/<variant>]". Only linux is accepted
// because the base layer is a Linux root file system; arm64 gets the variant
// "v8" when none is given, as registries and runtimes expect.
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, err
	}
	if p.OS != "linux" || p.Architecture == "" || p.OSVersion != "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want linux/<arch>[/<variant>], like linux/amd64 or linux/arm64", s)
	}
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	return *p, nil
}

// Image returns the single-platform image of spec's binary built for p,
// on top of base (the layer of BaseFiles, shared by all images).
func Image(spec Spec, base v1.Layer, bin Binary) (v1.Image, error) {
	if spec.Name == "" {
		return nil, fmt.Errorf("image spec has no Name: set it to the binary's name")
	}
	epoch := spec.Epoch.UTC().Truncate(time.Second)
	binLayer, err := NewLayer([]File{BinaryFile(spec.Name, bin.Data)}, epoch)
	if err != nil {
		return nil, fmt.Errorf("layer of %s for %s: %w", spec.Name, bin.Platform, err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: history(epoch, "distroless-static-equivalent nonroot base")},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: history(epoch, "COPY "+spec.Name+" /"+spec.Name)},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = bin.Platform.OS, bin.Platform.Architecture, bin.Platform.Variant
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", NonrootID, NonrootID),
		Entrypoint: []string{"/" + spec.Name},
		WorkingDir: "/",
		Env:        []string{"PATH=/"},
		Labels:     labels(spec),
	}
	return mutate.ConfigFile(img, cf)
}

func history(epoch time.Time, createdBy string) v1.History {
	return v1.History{Created: v1.Time{Time: epoch}, CreatedBy: createdBy, Comment: "rotor ociimage"}
}

func labels(spec Spec) map[string]string {
	l := map[string]string{LabelTitle: spec.Name}
	for k, v := range map[string]string{LabelSource: spec.Source, LabelRevision: spec.Revision, LabelVersion: spec.Version} {
		if v != "" {
			l[k] = v
		}
	}
	return l
}

// Index returns the OCI image index of spec's binary: one manifest per
// binary, ordered by platform so the caller's order does not change the
// digest.
func Index(spec Spec, bins []Binary) (v1.ImageIndex, error) {
	if len(bins) == 0 {
		return nil, fmt.Errorf("index of %s: no binaries given", spec.Name)
	}
	base, err := NewLayer(BaseFiles(spec.CABundle), spec.Epoch)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	sorted := append([]Binary(nil), bins...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Platform.String() < sorted[j].Platform.String() })
	adds := make([]mutate.IndexAddendum, 0, len(sorted))
	for i, b := range sorted {
		if i > 0 && b.Platform.String() == sorted[i-1].Platform.String() {
			return nil, fmt.Errorf("index of %s: platform %s given twice", spec.Name, b.Platform)
		}
		img, err := Image(spec, base, b)
		if err != nil {
			return nil, err
		}
		p := b.Platform
		adds = append(adds, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1,
			Platform:  &p,
		}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// plainImage hides the artifactType that go-containerregistry would
// otherwise copy from the config media type into the image's index
// descriptor: OCI reserves the field for artifacts, and images built by
// docker buildx or ko leave it out.
type plainImage struct{ v1.Image }

// ArtifactType implements go-containerregistry's partial.withArtifactType.
func (plainImage) ArtifactType() (string, error) { return "", nil }
