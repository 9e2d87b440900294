package ociimage

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"
)

var testEpoch = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func readTar(t *testing.T, raw []byte) []*tar.Header {
	t.Helper()
	var hs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

func TestTarHeaders(t *testing.T) {
	// Sub-second epochs are truncated: USTAR stores seconds only.
	raw, err := Tar(BaseFiles([]byte("certs")), testEpoch.Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	hs := readTar(t, raw)
	want := []struct {
		name     string
		mode     int64
		uid, gid int
	}{
		{"etc/", 0o755, 0, 0},
		{"etc/group", 0o644, 0, 0},
		{"etc/nsswitch.conf", 0o644, 0, 0},
		{"etc/passwd", 0o644, 0, 0},
		{"etc/ssl/", 0o755, 0, 0},
		{"etc/ssl/certs/", 0o755, 0, 0},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, 0, 0},
		{"home/", 0o755, 0, 0},
		{"home/nonroot/", 0o700, NonrootID, NonrootID},
		{"root/", 0o700, 0, 0},
		{"tmp/", 0o1777, 0, 0},
	}
	if len(hs) != len(want) {
		t.Fatalf("got %d entries, want %d", len(hs), len(want))
	}
	for i, w := range want {
		h := hs[i]
		t.Run(w.name, func(t *testing.T) {
			if h.Name != w.name || h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid {
				t.Errorf("got %s mode %o owner %d:%d, want %s mode %o owner %d:%d", h.Name, h.Mode, h.Uid, h.Gid, w.name, w.mode, w.uid, w.gid)
			}
			if !h.ModTime.Equal(testEpoch) {
				t.Errorf("ModTime %v, want %v", h.ModTime, testEpoch)
			}
			if h.Uname != "" || h.Gname != "" || h.Format != tar.FormatUSTAR {
				t.Errorf("uname %q gname %q format %v, want empty names and USTAR", h.Uname, h.Gname, h.Format)
			}
			if isDir := strings.HasSuffix(w.name, "/"); isDir != (h.Typeflag == tar.TypeDir) {
				t.Errorf("typeflag %c for %s", h.Typeflag, w.name)
			}
		})
	}
}

func TestTarRejects(t *testing.T) {
	tests := []struct {
		name  string
		files []File
	}{
		{"relative path", []File{Regular("etc/passwd", 0o644, 0, 0, nil)}},
		{"unclean path", []File{Regular("/etc/../passwd", 0o644, 0, 0, nil)}},
		{"root", []File{Dir("/", 0o755, 0, 0)}},
		{"duplicate", []File{Regular("/a", 0o644, 0, 0, nil), Regular("/a", 0o600, 0, 0, nil)}},
		{"file as parent", []File{Regular("/a", 0o644, 0, 0, nil), Regular("/a/b", 0o644, 0, 0, nil)}},
		{"directory with data", []File{{Path: "/d", Mode: fs.ModeDir | 0o755, Data: []byte("x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Tar(tt.files, testEpoch); err == nil {
				t.Error("Tar succeeded, want an error")
			}
		})
	}
}

func TestLayerDigests(t *testing.T) {
	base := func() []File {
		return []File{BinaryFile("rotor", []byte("binary")), Dir("/tmp", fs.ModeSticky|0o777, 0, 0)}
	}
	ref, err := NewLayer(base(), testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	refDigest, _ := ref.Digest()
	tests := []struct {
		name  string
		files []File
		epoch time.Time
		same  bool
	}{
		{"same inputs", base(), testEpoch, true},
		{"input order", []File{base()[1], base()[0]}, testEpoch, true},
		{"one byte of content", []File{BinaryFile("rotor", []byte("binarz")), base()[1]}, testEpoch, false},
		{"mode", []File{Regular("/rotor", 0o700, 0, 0, []byte("binary")), base()[1]}, testEpoch, false},
		{"owner", []File{Regular("/rotor", 0o755, 1, 0, []byte("binary")), base()[1]}, testEpoch, false},
		{"epoch", base(), testEpoch.Add(time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLayer(tt.files, tt.epoch)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := l.Digest()
			if (d == refDigest) != tt.same {
				t.Errorf("digest %s vs %s: want same=%v", d, refDigest, tt.same)
			}
		})
	}
}

func TestLayerHashes(t *testing.T) {
	l, err := NewLayer([]File{BinaryFile("rotor", []byte("binary"))}, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Tar([]File{BinaryFile("rotor", []byte("binary"))}, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Error("Uncompressed differs from Tar")
	}
	hs := readTar(t, raw)
	if len(hs) != 1 || hs[0].Name != "rotor" || hs[0].Mode != 0o755 || hs[0].Size != 6 {
		t.Errorf("binary layer headers %+v", hs)
	}
}
