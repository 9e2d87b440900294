// Package image is the image runtime's pull-and-unpack cache: it resolves
// an image reference with go-containerregistry, picks the linux manifest
// of this machine's architecture from an index, and unpacks the layers
// into a root filesystem kept under the store's directory by image
// digest, shared by every pod (and every agent) that uses the store.
//
// Layout of the store's directory:
//
//	images/<sha256 hex>/rootfs        the unpacked layers
//	images/<sha256 hex>/config.json   the image's config file
//	refs/<sha256 of the reference>    reference → digest, for IfNotPresent
//	tmp/                              unpacking in progress
//
// An image directory appears by an atomic rename once complete, so a
// crashed pull leaves only tmp/ litter and two agents unpacking the same
// image race harmlessly.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
)

// Options configure a Store.
type Options struct {
	// Dir holds the cache; created if missing.
	Dir string
	// InsecureRegistries (host or host:port) are reached over plain HTTP.
	// Registries on loopback hosts always are.
	InsecureRegistries []string
	// Platform defaults to linux/<GOARCH>.
	Platform *v1.Platform
	// Transport defaults to remote.DefaultTransport.
	Transport http.RoundTripper
}

// Store pulls and caches images. Safe for concurrent use.
type Store struct {
	dir       string
	insecure  map[string]bool
	platform  v1.Platform
	transport http.RoundTripper
	group     singleflight.Group
}

// Image is an unpacked image.
type Image struct {
	// ID is the repository@digest the status's imageID shows.
	ID     string
	Digest v1.Hash
	// RootFS is the unpacked root filesystem; shared, never to be written.
	RootFS string
	Config v1.Config
}

// PullError is a failed pull with the kubelet's waiting reason for it.
type PullError struct {
	Reason string // ErrImagePull, InvalidImageName or ErrImageNeverPull
	Err    error
}

func (e *PullError) Error() string { return e.Err.Error() }
func (e *PullError) Unwrap() error { return e.Err }

// New returns a store in opts.Dir.
func New(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("image store: a directory is required (--image-dir)")
	}
	for _, d := range []string{"images", "refs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	s := &Store{dir: opts.Dir, insecure: map[string]bool{}, platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, transport: opts.Transport}
	for _, r := range opts.InsecureRegistries {
		s.insecure[r] = true
	}
	if opts.Platform != nil {
		s.platform = *opts.Platform
	}
	if s.transport == nil {
		s.transport = remote.DefaultTransport
	}
	return s, nil
}

// Pull returns the unpacked image by policy: Always resolves the
// reference at the registry every time (a moved tag is seen), IfNotPresent
// uses the digest the reference resolved to last time if that image is
// here, Never only looks here.
func (s *Store) Pull(ctx context.Context, image string, policy corev1.PullPolicy) (*Image, error) {
	ref, err := s.parse(image)
	if err != nil {
		return nil, &PullError{Reason: "InvalidImageName", Err: fmt.Errorf("parse image %q: %w", image, err)}
	}
	if policy != corev1.PullAlways {
		if img, err := s.cached(ref); err == nil {
			return img, nil
		}
		if policy == corev1.PullNever {
			return nil, &PullError{Reason: "ErrImageNeverPull", Err: fmt.Errorf("container image %q is not present with pull policy of Never", image)}
		}
	}
	// One fetch per reference at a time, not bound to the first caller's
	// context: a pod deleted mid-pull must not fail its neighbours' pull.
	ch := s.group.DoChan(ref.Name(), func() (any, error) {
		return s.fetch(context.WithoutCancel(ctx), ref)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, &PullError{Reason: "ErrImagePull", Err: res.Err}
		}
		return res.Val.(*Image), nil
	}
}

func (s *Store) parse(image string) (name.Reference, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, err
	}
	if reg := ref.Context().RegistryStr(); s.insecure[reg] || isLoopback(reg) {
		return name.ParseReference(image, name.Insecure)
	}
	return ref, nil
}

func isLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (s *Store) fetch(ctx context.Context, ref name.Reference) (*Image, error) {
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(s.platform),
		remote.WithTransport(s.transport), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref.Name(), err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref.Name(), err)
	}
	if _, err := os.Stat(s.imageDir(digest)); err != nil {
		_, err, _ = s.group.Do("unpack "+digest.String(), func() (any, error) { return nil, s.unpack(img, digest) })
		if err != nil {
			return nil, fmt.Errorf("unpack %s (%s): %w", ref.Name(), digest, err)
		}
	}
	if err := s.recordRef(ref, digest); err != nil {
		return nil, err
	}
	return s.load(ref, digest)
}

func (s *Store) unpack(img v1.Image, digest v1.Hash) error {
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), digest.Hex[:12]+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range layers {
		if err := unpackOne(rootfs, l); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), cfg, 0o644); err != nil {
		return err
	}
	err = os.Rename(tmp, s.imageDir(digest))
	if err != nil && dirExists(s.imageDir(digest)) {
		return nil // another agent sharing the store got there first
	}
	return err
}

func unpackOne(rootfs string, l v1.Layer) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := UnpackLayer(rootfs, rc); err != nil {
		return err
	}
	// Read to the end so the layer's digest is verified.
	_, err = io.Copy(io.Discard, rc)
	return err
}

// cached returns the image ref resolved to last time, if it is here.
func (s *Store) cached(ref name.Reference) (*Image, error) {
	b, err := os.ReadFile(s.refFile(ref))
	if err != nil {
		return nil, err
	}
	var rec refRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	digest, err := v1.NewHash(rec.Digest)
	if err != nil {
		return nil, err
	}
	return s.load(ref, digest)
}

type refRecord struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

func (s *Store) recordRef(ref name.Reference, digest v1.Hash) error {
	b, _ := json.Marshal(refRecord{Ref: ref.Name(), Digest: digest.String()})
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "ref-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.refFile(ref))
}

func (s *Store) load(ref name.Reference, digest v1.Hash) (*Image, error) {
	dir := s.imageDir(digest)
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("image %s config: %w", digest, err)
	}
	return &Image{ID: ref.Context().Digest(digest.String()).String(), Digest: digest, RootFS: filepath.Join(dir, "rootfs"), Config: cf.Config}, nil
}

func (s *Store) imageDir(d v1.Hash) string { return filepath.Join(s.dir, "images", d.Hex) }

func (s *Store) refFile(ref name.Reference) string {
	sum := sha256.Sum256([]byte(ref.Name()))
	return filepath.Join(s.dir, "refs", hex.EncodeToString(sum[:]))
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
