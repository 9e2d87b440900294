package rootpath

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	root := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(root, "run", "x"), 0o755))
	mustDo(t, os.MkdirAll(filepath.Join(root, "var"), 0o755))
	mustDo(t, os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755))
	mustDo(t, os.Symlink("/run", filepath.Join(root, "var", "run")))
	mustDo(t, os.Symlink("../../../../etc", filepath.Join(root, "usr", "bin", "up")))
	mustDo(t, os.Symlink("usr/bin", filepath.Join(root, "bin")))
	mustDo(t, os.Symlink("loop2", filepath.Join(root, "loop1")))
	mustDo(t, os.Symlink("loop1", filepath.Join(root, "loop2")))
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "/usr/bin", "usr/bin"},
		{"absolute link stays in root", "/var/run/secrets/token", "run/secrets/token"},
		{"relative link", "bin/sh", "usr/bin/sh"},
		{"dotdot link clamped", "usr/bin/up/passwd", "etc/passwd"},
		{"dotdot in path clamped", "../../etc", "etc"},
		{"missing tail kept", "/a/b/c", "a/b/c"},
		{"root", "/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(root, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, tc.want); got != want {
				t.Fatalf("Resolve(%q) = %q, want %q", tc.in, got, want)
			}
		})
	}
	t.Run("loop", func(t *testing.T) {
		if _, err := Resolve(root, "loop1/x"); err == nil {
			t.Fatal("Resolve of a symlink loop succeeded, want an error")
		}
	})
}

func TestResolveParent(t *testing.T) {
	root := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	mustDo(t, os.MkdirAll(filepath.Join(root, "var"), 0o755))
	mustDo(t, os.Symlink("/run", filepath.Join(root, "var", "run")))
	for _, tc := range []struct{ name, in, want string }{
		{"last link not followed", "var/run", "var/run"},
		{"parent link followed", "var/run/lock", "run/lock"},
		{"root", ".", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveParent(root, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, tc.want); got != want {
				t.Fatalf("ResolveParent(%q) = %q, want %q", tc.in, got, want)
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
