package nsexec

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain makes the test binary both the helper (Subcommand) and the
// container's program (probeEnv set), as the agent's binary is the helper
// in production.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Subcommand {
		os.Exit(Main(os.Args[2:]))
	}
	if os.Getenv(probeEnv) != "" {
		os.Exit(probeMain())
	}
	os.Exit(m.Run())
}

const probeEnv = "NSEXEC_TEST_PROBE"

// probeMain reports what the container sees.
func probeMain() int {
	host, _ := os.Hostname()
	wd, _ := os.Getwd()
	groups, _ := os.Getgroups()
	fmt.Printf("uid=%d gid=%d groups=%v cwd=%s hostname=%s\n", os.Getuid(), os.Getgid(), groups, wd, host)
	b, err := os.ReadFile("/var/run/data/hello")
	fmt.Printf("volume=%q err=%v\n", b, err)
	fmt.Printf("volume-write=%v\n", os.WriteFile("/var/run/data/new", nil, 0o644))
	fmt.Printf("root-write=%v\n", os.WriteFile("/tmp/written", nil, 0o644))
	fmt.Printf("devnull=%v\n", os.WriteFile("/dev/null", []byte("x"), 0o644))
	_, err = os.Stat("/proc/self/status")
	fmt.Printf("proc=%v\n", err)
	return 3
}

func TestStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the container helper needs root (mount namespaces, chroot); this sandbox runs tests as root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	libs := libMounts(t, self)
	rootfs := t.TempDir()
	copyFile(t, self, filepath.Join(rootfs, "probe"))
	mustDo(t, os.MkdirAll(filepath.Join(rootfs, "run"), 0o755))
	mustDo(t, os.Mkdir(filepath.Join(rootfs, "tmp"), 0o755))
	mustDo(t, os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777))
	mustDo(t, os.MkdirAll(filepath.Join(rootfs, "var"), 0o755))
	mustDo(t, os.Symlink("/run", filepath.Join(rootfs, "var", "run")))
	data := t.TempDir()
	mustDo(t, os.WriteFile(filepath.Join(data, "hello"), []byte("world"), 0o644))

	for _, tc := range []struct {
		name     string
		readOnly bool
		want     []string
	}{
		{"read-only root", true, []string{"uid=65532 gid=65532 groups=[7 65532]", "cwd=/work", "hostname=web-0", `volume="world"`,
			"volume-write=open /var/run/data/new: read-only file system", "root-write=open /tmp/written: read-only file system", "devnull=<nil>", "proc=<nil>"}},
		{"writable root is an overlay", false, []string{"root-write=<nil>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			scratch := filepath.Join(dir, "scratch")
			mustDo(t, os.Mkdir(scratch, 0o755))
			spec := &Spec{
				RootFS: rootfs, Scratch: scratch, ReadOnlyRoot: tc.readOnly, Hostname: "web-0",
				Mounts: append([]Mount{{Source: data, Target: "/var/run/data", ReadOnly: true}}, libs...),
				Argv:   []string{"/probe"}, Env: []string{probeEnv + "=1"}, Dir: "/work",
				UID: 65532, GID: 65532, Groups: []uint32{65532, 7},
			}
			out := runContainer(t, spec, filepath.Join(dir, "spec.json"), 3)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("container output lacks %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(filepath.Join(rootfs, "tmp", "written")); err == nil {
				t.Fatal("the container wrote into the shared image root")
			}
		})
	}
	t.Run("missing executable is a start error", func(t *testing.T) {
		dir := t.TempDir()
		mustDo(t, os.Mkdir(filepath.Join(dir, "scratch"), 0o755))
		spec := &Spec{RootFS: rootfs, Scratch: filepath.Join(dir, "scratch"), ReadOnlyRoot: true, Hostname: "x", Argv: []string{"nope"}, Env: []string{"PATH=/bin"}, Dir: "/"}
		_, err := Start(self, spec, filepath.Join(dir, "spec.json"), io.Discard)
		var se *StartError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, "nope not found in $PATH") {
			t.Fatalf("Start = %v, want a StartError about the missing executable", err)
		}
	})
}

func TestSignalAndExitCode(t *testing.T) {
	self, _ := os.Executable()
	libs := libMounts(t, self)
	rootfs := t.TempDir()
	copyFile(t, self, filepath.Join(rootfs, "probe"))
	dir := t.TempDir()
	mustDo(t, os.Mkdir(filepath.Join(dir, "scratch"), 0o755))
	// The program is this test binary running only TestSleepForever.
	spec := &Spec{RootFS: rootfs, Scratch: filepath.Join(dir, "scratch"), ReadOnlyRoot: true, Hostname: "x", Mounts: libs,
		Argv: []string{"/probe", "-test.run=^TestSleepForever$"}, Env: []string{"NSEXEC_SLEEP=1"}, Dir: "/"}
	p, err := Start(self, spec, filepath.Join(dir, "spec.json"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	mustDo(t, p.Signal(syscall.SIGKILL))
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("container not gone 10s after SIGKILL")
	}
	if got := p.ExitCode(); got != 137 {
		t.Fatalf("exit code after SIGKILL = %d, want 137", got)
	}
}

// TestSleepForever is the container program of TestSignalAndExitCode.
func TestSleepForever(t *testing.T) {
	if os.Getenv("NSEXEC_SLEEP") == "" {
		t.Skip("only runs as a container's program")
	}
	time.Sleep(time.Hour)
}

func runContainer(t *testing.T, spec *Spec, specFile string, wantCode int32) string {
	t.Helper()
	log := filepath.Join(filepath.Dir(specFile), "log")
	f, err := os.Create(log)
	mustDo(t, err)
	defer f.Close()
	self, _ := os.Executable()
	p, err := Start(self, spec, specFile, f)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("container did not exit within 20s")
	}
	b, _ := os.ReadFile(log)
	if code := p.ExitCode(); code != wantCode {
		t.Fatalf("exit code %d, want %d; output:\n%s", code, wantCode, b)
	}
	return string(b)
}

// libMounts lends the node's shared libraries to a container whose
// program is this test binary when it is dynamically linked (as under
// -race): read-only binds of /lib, /lib64 and /usr/lib.
func libMounts(t *testing.T, bin string) []Mount {
	t.Helper()
	f, err := elf.Open(bin)
	mustDo(t, err)
	defer f.Close()
	dynamic := false
	for _, p := range f.Progs {
		dynamic = dynamic || p.Type == elf.PT_INTERP
	}
	if !dynamic {
		return nil
	}
	var out []Mount
	for _, d := range []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, Mount{Source: d, Target: d, ReadOnly: true})
		}
	}
	return out
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	mustDo(t, err)
	mustDo(t, os.WriteFile(dst, b, 0o755))
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
