package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
)

// testImage is a one-layer image holding /id with content id.
func testImage(t *testing.T, id string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "id", Mode: 0o644, Size: int64(len(id)), Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte(id))
	_ = tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/" + id}, User: "65532:65532"})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushIndex pushes an index with an image for this machine (content
// "native") and one for another architecture (content "foreign").
func pushIndex(t *testing.T, ref string, native string) {
	t.Helper()
	other := "s390x"
	if runtime.GOARCH == other {
		other = "arm64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: testImage(t, "foreign"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: testImage(t, native), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

func readID(t *testing.T, img *Image) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(img.RootFS, "id"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPull(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/rotor/app:v1"
	pushIndex(t, ref, "native-1")
	s, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	first, err := s.Pull(ctx, ref, corev1.PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("picks this platform from the index", func(t *testing.T) {
		if got := readID(t, first); got != "native-1" {
			t.Fatalf("unpacked %q, want native-1", got)
		}
		if first.Config.User != "65532:65532" || first.Config.Entrypoint[0] != "/native-1" {
			t.Fatalf("config %+v", first.Config)
		}
		if !strings.HasPrefix(first.ID, host+"/rotor/app@sha256:") {
			t.Fatalf("ID %q, want repo@digest", first.ID)
		}
	})
	t.Run("Always sees a moved tag", func(t *testing.T) {
		pushIndex(t, ref, "native-2")
		img, err := s.Pull(ctx, ref, corev1.PullAlways)
		if err != nil {
			t.Fatal(err)
		}
		if got := readID(t, img); got != "native-2" || img.Digest == first.Digest {
			t.Fatalf("after the tag moved, Always gave %q (%s)", got, img.Digest)
		}
	})
	t.Run("IfNotPresent uses the cache without the registry", func(t *testing.T) {
		srv.Close()
		img, err := s.Pull(ctx, ref, corev1.PullIfNotPresent)
		if err != nil {
			t.Fatalf("cached pull with the registry down: %v", err)
		}
		if got := readID(t, img); got != "native-2" {
			t.Fatalf("cached pull gave %q, want the last resolved (native-2)", got)
		}
	})
	t.Run("Always fails with the registry down", func(t *testing.T) {
		_, err := s.Pull(ctx, ref, corev1.PullAlways)
		assertReason(t, err, "ErrImagePull")
	})
	t.Run("Never without the image", func(t *testing.T) {
		_, err := s.Pull(ctx, host+"/rotor/other:v1", corev1.PullNever)
		assertReason(t, err, "ErrImageNeverPull")
	})
	t.Run("invalid name", func(t *testing.T) {
		_, err := s.Pull(ctx, "UPPER/Case:x:y", corev1.PullAlways)
		assertReason(t, err, "InvalidImageName")
	})
}

func TestPullMissing(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	s, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Pull(context.Background(), strings.TrimPrefix(srv.URL, "http://")+"/rotor/nope:v1", corev1.PullIfNotPresent)
	assertReason(t, err, "ErrImagePull")
	if !strings.Contains(err.Error(), "rotor/nope:v1") {
		t.Fatalf("error %q does not name the image", err)
	}
}

func assertReason(t *testing.T, err error, reason string) {
	t.Helper()
	var pe *PullError
	if !errors.As(err, &pe) || pe.Reason != reason {
		t.Fatalf("error %v, want a PullError with reason %s", err, reason)
	}
}
