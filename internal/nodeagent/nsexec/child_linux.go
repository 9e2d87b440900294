package nsexec

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/rotor-dev/rotor/internal/nodeagent/rootpath"
)

// reportFD is the pipe on which the helper reports a failure before exec.
const reportFD = 3

// devices are bound from the node into the container's /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// Main is the helper: it reads --spec, builds the container's filesystem
// in its (already private) mount namespace and execs the entrypoint. It
// returns only on failure, with the exit code to use.
func Main(args []string) int {
	report := os.NewFile(reportFD, "report")
	syscall.CloseOnExec(reportFD)
	err := run(args)
	// Reached only when the exec did not happen.
	fmt.Fprintf(os.Stderr, "rotor-nodeagent %s: %v\n", Subcommand, err)
	if report != nil {
		fmt.Fprint(report, err.Error())
	}
	return 128
}

func run(args []string) error {
	fs := flag.NewFlagSet(Subcommand, flag.ContinueOnError)
	specFile := fs.String("spec", "", "container spec (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec, err := ReadSpec(*specFile)
	if err != nil {
		return err
	}
	if spec.HostRoot {
		return runOnHost(spec)
	}
	root, err := buildRoot(spec)
	if err != nil {
		return err
	}
	if err := syscall.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if err := enter(root, spec.Dir); err != nil {
		return err
	}
	if err := dropPrivileges(spec); err != nil {
		return err
	}
	return execEntrypoint(spec)
}

// runOnHost binds the container's volumes over the node's paths, in its
// private mount namespace, and execs the entrypoint there.
func runOnHost(spec *Spec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	mounts := append([]Mount(nil), spec.Mounts...)
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(filepath.Clean(mounts[i].Target), "/") < strings.Count(filepath.Clean(mounts[j].Target), "/")
	})
	for _, m := range mounts {
		if !filepath.IsAbs(m.Target) {
			return fmt.Errorf("mount path %s is not absolute", m.Target)
		}
		if err := bindInto("/", m); err != nil {
			return err
		}
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := syscall.Chdir(dir); err != nil {
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	return execEntrypoint(spec)
}

// buildRoot mounts the container's root filesystem and everything in it,
// and returns its path.
func buildRoot(spec *Spec) (string, error) {
	// Nothing below may leak back to the node's namespace (Go's runtime
	// does this too for Unshareflags CLONE_NEWNS; it costs nothing twice).
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return "", fmt.Errorf("make / private: %w", err)
	}
	root, err := mountRoot(spec)
	if err != nil {
		return "", err
	}
	if err := mountDev(root); err != nil {
		return "", err
	}
	if err := mountProc(root); err != nil {
		return "", err
	}
	mounts := append([]Mount(nil), spec.Mounts...)
	// Parents before children, so /var/run/secrets lands on top of /var/run.
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(filepath.Clean(mounts[i].Target), "/") < strings.Count(filepath.Clean(mounts[j].Target), "/")
	})
	for _, m := range mounts {
		if err := bindInto(root, m); err != nil {
			return "", err
		}
	}
	if dir, err := rootpath.Resolve(root, spec.Dir); err == nil {
		_ = os.MkdirAll(dir, 0o755) // a missing workingDir is created, as by runc
	}
	if spec.ReadOnlyRoot {
		if err := syscall.Mount("", root, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			return "", fmt.Errorf("make the root filesystem read-only: %w", err)
		}
	}
	return root, nil
}

// mountRoot gives the container its root at Scratch/root: a read-only
// root is a bind of the image; a writable one an overlay with a tmpfs
// upper layer, so writes stay with this container run and never reach the
// shared image.
func mountRoot(spec *Spec) (string, error) {
	if err := syscall.Mount("tmpfs", spec.Scratch, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=755"); err != nil {
		return "", fmt.Errorf("mount scratch tmpfs: %w", err)
	}
	root := filepath.Join(spec.Scratch, "root")
	upper, work := filepath.Join(spec.Scratch, "upper"), filepath.Join(spec.Scratch, "work")
	for _, d := range []string{root, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return "", err
		}
	}
	if !spec.ReadOnlyRoot {
		err := errors.New("a path holds ',' or ':', which overlay options cannot carry")
		if !strings.ContainsAny(spec.RootFS+spec.Scratch, ",:") {
			opts := "lowerdir=" + spec.RootFS + ",upperdir=" + upper + ",workdir=" + work
			if err = syscall.Mount("overlay", root, "overlay", 0, opts); err == nil {
				return root, nil
			}
		}
		fmt.Fprintf(os.Stderr, "rotor-nodeagent: overlay unavailable (%v): the container writes into the shared image directory\n", err)
	}
	if err := syscall.Mount(spec.RootFS, root, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return "", fmt.Errorf("bind the image root: %w", err)
	}
	return root, nil
}

func mountDev(root string) error {
	dev, err := mkdirIn(root, "/dev")
	if err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dev, "tmpfs", syscall.MS_NOSUID|syscall.MS_NOEXEC, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		if _, err := os.Stat("/dev/" + d); err != nil {
			continue // not on this node: the container goes without
		}
		target := filepath.Join(dev, d)
		if err := touch(target); err != nil {
			return err
		}
		if err := syscall.Mount("/dev/"+d, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", d, err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return err
	}
	return syscall.Mount("shm", shm, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=1777,size=65536k")
}

// mountProc gives the container a /proc (of the node's pid namespace: it
// shows the node's processes, but Go's runtime and os.Hostname need it).
func mountProc(root string) error {
	proc, err := mkdirIn(root, "/proc")
	if err != nil {
		return err
	}
	if err := syscall.Mount("proc", proc, "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

// bindInto mounts m at its target, which is resolved inside root (a
// symlink in the image cannot point the mount at the node's own files)
// and created empty first, as a directory or a file like its source.
func bindInto(root string, m Mount) error {
	fi, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("mount %s: source: %w", m.Target, err)
	}
	target, err := rootpath.Resolve(root, m.Target)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else {
		err = touch(target)
	}
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", m.Target, err)
	}
	if err := syscall.Mount(m.Source, target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("mount %s at %s: %w", m.Source, m.Target, err)
	}
	if m.ReadOnly {
		if err := syscall.Mount("", target, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", m.Target, err)
		}
	}
	return nil
}

func mkdirIn(root, p string) (string, error) {
	dir, err := rootpath.Resolve(root, p)
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

func touch(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

func enter(root, dir string) error {
	if err := syscall.Chroot(root); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if dir == "" {
		dir = "/"
	}
	if err := syscall.Chdir(dir); err != nil {
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	return nil
}

func dropPrivileges(spec *Spec) error {
	groups := make([]int, 0, len(spec.Groups))
	for _, g := range spec.Groups {
		groups = append(groups, int(g))
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(int(spec.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", spec.GID, err)
	}
	if err := syscall.Setuid(int(spec.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", spec.UID, err)
	}
	// Changing credentials clears the parent-death signal; re-arm it so the
	// container still dies with the agent.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		return fmt.Errorf("set parent-death signal: %w", errno)
	}
	return nil
}

func execEntrypoint(spec *Spec) error {
	path, err := lookPath(spec.Argv[0], spec.Env)
	if err != nil {
		return err
	}
	err = syscall.Exec(path, spec.Argv, spec.Env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// lookPath finds a command without a slash in the container's PATH (not
// the helper's), as a container runtime does.
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, cmd)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("executable file " + cmd + " not found in $PATH of the container")
}
