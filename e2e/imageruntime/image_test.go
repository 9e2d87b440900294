package imageruntime

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// buildProgram compiles testdata/podprog as a static binary.
func buildProgram(t *testing.T, dir string) []byte {
	t.Helper()
	out := filepath.Join(dir, "podprog")
	start := time.Now()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the test program: put it on PATH (%v)", err)
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/podprog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test program: %v\n%s", err, b)
	}
	t.Logf("built the test program in %s", time.Since(start).Round(time.Millisecond))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startRegistry serves an in-memory registry on 127.0.0.1 and returns its
// host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushImage pushes a distroless-like image of prog as an index holding
// this machine's platform and a decoy: the program at /podprog, user
// 65532, /etc/passwd, a /tmp, and /var/run a symlink to /run (the mount of
// the service account dir must follow it inside the root).
func pushImage(t *testing.T, ref string, prog []byte) {
	t.Helper()
	img := imageOf(t, layerOf(t, prog))
	decoy := imageOf(t, layerOf(t, []byte("not this one")))
	other := "s390x"
	if runtime.GOARCH == other {
		other = "arm64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: decoy, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func imageOf(t *testing.T, layer v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{
		Entrypoint: []string{"/podprog"}, Cmd: []string{"serve"}, User: "65532:65532", WorkingDir: "/",
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "FROM_IMAGE=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func layerOf(t *testing.T, prog []byte) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, mode int64, body string) {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(body))
	}
	dir := func(name string, mode int64, uid int) {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Typeflag: tar.TypeDir, Uid: uid, Gid: uid})
	}
	dir("etc/", 0o755, 0)
	file("etc/passwd", 0o644, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	file("etc/group", 0o644, "root:x:0:\nnonroot:x:65532:\n")
	dir("home/", 0o755, 0)
	dir("home/nonroot/", 0o700, 65532)
	dir("tmp/", 0o1777, 0)
	dir("run/", 0o755, 0)
	dir("var/", 0o755, 0)
	_ = tw.WriteHeader(&tar.Header{Name: "var/run", Typeflag: tar.TypeSymlink, Linkname: "/run"})
	file("podprog", 0o755, string(prog))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}
