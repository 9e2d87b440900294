package ociimage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefNameAnnotation is the index.json annotation naming each image of a
// layout; WriteLayout sets it to NAME:TAG.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Named is one image of a layout.
type Named struct {
	Name  string // e.g. "rotor-propeller"
	Tag   string // e.g. "v0.3.0" or "dev"
	Index v1.ImageIndex
}

// WriteLayout writes images (binary name → index) as one OCI image layout in
// dir, every index annotated with RefNameAnnotation NAME:tag, in name order
// so equal inputs give an equal index.json.
//
// The layout is written beside dir and renamed over it, so dir never holds
// blobs of an earlier build. An existing dir is replaced only if it is empty
// or an OCI layout (it has an oci-layout file); anything else is an error,
// never deleted.
func WriteLayout(dir string, images map[string]v1.ImageIndex, tag string) error {
	if tag == "" || strings.ContainsAny(tag, ":/@") {
		return fmt.Errorf("layout tag %q: want a non-empty tag without ':', '/' or '@'", tag)
	}
	if err := replaceable(dir); err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := writeLayout(tmp, images, tag); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func writeLayout(dir string, images map[string]v1.ImageIndex, tag string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, ":@") {
			return fmt.Errorf("image name %q: want a repository name like rotor-propeller", n)
		}
		ann := map[string]string{RefNameAnnotation: n + ":" + tag}
		if err := p.AppendIndex(images[n], layout.WithAnnotations(ann)); err != nil {
			return fmt.Errorf("write %s to layout %s: %w", n, dir, err)
		}
	}
	return nil
}

// replaceable reports whether WriteLayout may replace dir.
func replaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("%s exists and is not an OCI image layout: remove it or choose another directory", dir)
	}
	return nil
}

// ReadLayout lists the images of a layout written by WriteLayout, in
// index.json order. Every entry must be an image index with a
// RefNameAnnotation NAME:TAG.
func ReadLayout(dir string) ([]Named, error) {
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	im, err := root.IndexManifest()
	if err != nil {
		return nil, err
	}
	out := make([]Named, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		ref := d.Annotations[RefNameAnnotation]
		i := strings.LastIndex(ref, ":")
		if i <= 0 || i == len(ref)-1 || strings.Contains(ref[i:], "/") {
			return nil, fmt.Errorf("layout %s: entry %s has %s %q, want NAME:TAG: write the layout with ociimage.WriteLayout", dir, d.Digest, RefNameAnnotation, ref)
		}
		if d.MediaType != types.OCIImageIndex && d.MediaType != types.DockerManifestList {
			return nil, fmt.Errorf("layout %s: %s is a %s, want an image index", dir, ref, d.MediaType)
		}
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("layout %s: %s: %w", dir, ref, err)
		}
		out = append(out, Named{Name: ref[:i], Tag: ref[i+1:], Index: idx})
	}
	return out, nil
}
