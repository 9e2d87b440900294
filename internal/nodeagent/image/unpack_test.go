package image

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layer(t *testing.T, entries ...entry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			_, _ = tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }

func TestUnpackLayers(t *testing.T) {
	base := []entry{
		dir("etc/"), {name: "etc/passwd", body: "root"}, {name: "etc/hosts", body: "x"},
		dir("app/"), {name: "app/a", body: "a"}, dir("app/sub/"), {name: "app/sub/b", body: "b"},
		dir("run/"), dir("var/"), {name: "var/run", typ: tar.TypeSymlink, link: "/run"},
		{name: "bin/tool", body: "#!", mode: 0o4755},
	}
	for _, tc := range []struct {
		name    string
		upper   []entry
		present map[string]string // path → content ("" for a dir or any content)
		absent  []string
	}{
		{"file whiteout", []entry{{name: "etc/.wh.hosts"}}, map[string]string{"etc/passwd": "root"}, []string{"etc/hosts"}},
		{"dir whiteout", []entry{{name: ".wh.app"}}, map[string]string{"etc/passwd": "root"}, []string{"app"}},
		{"opaque dir keeps this layer's entries", []entry{
			{name: "app/new", body: "n"}, {name: "app/.wh..wh..opq"}, dir("app/sub/"), {name: "app/sub/c", body: "c"},
		}, map[string]string{"app/new": "n", "app/sub/c": "c"}, []string{"app/a", "app/sub/b"}},
		{"opaque marker first", []entry{{name: "app/.wh..wh..opq"}, {name: "app/new", body: "n"}},
			map[string]string{"app/new": "n"}, []string{"app/a", "app/sub"}},
		{"file replaces dir", []entry{{name: "app", body: "now a file"}}, map[string]string{"app": "now a file"}, nil},
		{"overwrite", []entry{{name: "etc/passwd", body: "new"}}, map[string]string{"etc/passwd": "new"}, nil},
		{"write through absolute symlink stays inside", []entry{{name: "var/run/pid", body: "1"}}, map[string]string{"run/pid": "1"}, nil},
		{"hard link", []entry{{name: "etc/passwd2", typ: tar.TypeLink, link: "etc/passwd"}}, map[string]string{"etc/passwd2": "root"}, nil},
		{"leading slash and dot", []entry{{name: "/./etc/x", body: "x"}}, map[string]string{"etc/x": "x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := UnpackLayer(root, layer(t, base...)); err != nil {
				t.Fatal(err)
			}
			if err := UnpackLayer(root, layer(t, tc.upper...)); err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.present {
				b, err := os.ReadFile(filepath.Join(root, p))
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if want != "" && string(b) != want {
					t.Fatalf("%s = %q, want %q", p, b, want)
				}
			}
			for _, p := range tc.absent {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Fatalf("%s still present", p)
				}
			}
		})
	}
}

func TestUnpackModesAndLinks(t *testing.T) {
	root := t.TempDir()
	err := UnpackLayer(root, layer(t,
		dir("bin/"), entry{name: "bin/tool", body: "#!", mode: 0o4755},
		entry{name: "locked", typ: tar.TypeDir, mode: 0o700},
		entry{name: "sh", typ: tar.TypeSymlink, link: "bin/tool"},
		entry{name: "dev/null", typ: tar.TypeChar},
	))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/tool mode %s, want setuid 0755", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(root, "locked")); fi == nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode not kept: %v", fi)
	}
	if l, err := os.Readlink(filepath.Join(root, "sh")); err != nil || l != "bin/tool" {
		t.Fatalf("symlink sh -> %q (%v), want bin/tool", l, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "dev/null")); err == nil {
		t.Fatal("a device node was created")
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    entry
	}{
		{"dotdot name", entry{name: "../evil", body: "x"}},
		{"nested dotdot name", entry{name: "a/../../evil", body: "x"}},
		{"absolute dotdot name", entry{name: "/../evil", body: "x"}},
		{"hard link out", entry{name: "x", typ: tar.TypeLink, link: "../../etc/passwd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			err := UnpackLayer(filepath.Join(root, "rootfs"), layer(t, tc.e))
			if err == nil || !strings.Contains(err.Error(), "escapes the image root") {
				t.Fatalf("UnpackLayer = %v, want an escape error", err)
			}
		})
	}
	t.Run("symlink parent cannot lead out", func(t *testing.T) {
		outside := t.TempDir()
		root := t.TempDir()
		err := UnpackLayer(root, layer(t,
			entry{name: "out", typ: tar.TypeSymlink, link: outside},
			entry{name: "out/pwned", body: "x"},
			entry{name: "up", typ: tar.TypeSymlink, link: "../../../../../../" + outside},
			entry{name: "up/pwned2", body: "x"},
		))
		if err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatalf("layer wrote outside its root: %v", entries)
		}
		if _, err := os.Stat(filepath.Join(root, outside, "pwned")); err != nil {
			t.Fatalf("entry under an absolute symlink not placed inside the root: %v", err)
		}
	})
}
