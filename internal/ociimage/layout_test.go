package ociimage

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func testImages(t *testing.T) map[string]v1.ImageIndex {
	out := map[string]v1.ImageIndex{}
	for _, n := range []string{"rotor-propeller", "rotor"} {
		s := testSpec()
		s.Name = n
		idx, err := Index(s, testBins(t))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = idx
	}
	return out
}

func TestLayoutRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	images := testImages(t)
	// Writing twice checks that an earlier layout is replaced, not merged.
	for range 2 {
		if err := WriteLayout(dir, images, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "rotor" || got[1].Name != "rotor-propeller" {
		t.Fatalf("ReadLayout = %+v, want rotor and rotor-propeller in name order", got)
	}
	for _, n := range got {
		want, _ := images[n.Name].Digest()
		d, err := n.Index.Digest()
		if err != nil || d != want || n.Tag != "v1" {
			t.Errorf("%s:%s digest %s (%v), want tag v1 digest %s", n.Name, n.Tag, d, err, want)
		}
	}
	again := filepath.Join(t.TempDir(), "again")
	if err := WriteLayout(again, testImages(t), "v1"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	b, _ := os.ReadFile(filepath.Join(again, "index.json"))
	if string(a) != string(b) {
		t.Errorf("index.json differs between equal builds:\n%s\n%s", a, b)
	}
}

func TestWriteLayoutRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string)
		tag   string
	}{
		{"not a layout", func(dir string) {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, "keep.txt"), nil, 0o644)
		}, "v1"},
		{"empty tag", func(string) {}, ""},
		{"tag with colon", func(string) {}, "v:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			tt.setup(dir)
			if err := WriteLayout(dir, testImages(t), tt.tag); err == nil {
				t.Error("WriteLayout succeeded, want an error")
			}
			if tt.name == "not a layout" {
				if _, err := os.Stat(filepath.Join(dir, "keep.txt")); err != nil {
					t.Errorf("WriteLayout touched a directory it refused: %v", err)
				}
			}
		})
	}
}

func TestLoopbackHost(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "127.0.0.2": true,
		"registry.example.com": false, "10.0.0.1:5000": false, "ghcr.io": false,
	}
	for host, want := range tests {
		t.Run(host, func(t *testing.T) {
			if got := loopbackHost(host); got != want {
				t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
			}
		})
	}
}
