package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

func fileStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{URL: "file://" + t.TempDir() + "/raw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func prefix(t *testing.T, s *store.Store, node string, attempt int32) string {
	t.Helper()
	p, err := ref.Attempt{Namespace: "team", Workflow: "wf", WorkflowUID: "u1", Node: node, Attempt: attempt}.Prefix(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUploadThenDownload: what one task uploads (a file, a directory, a
// small and a large value) its downstream task downloads byte for byte;
// the large value is offloaded and the small one inline; every reference
// lies under the attempt's prefix.
func TestUploadThenDownload(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t)
	up := &Spec{Store: s.Root(), Prefix: prefix(t, s, "a", 0), Dir: t.TempDir(), Outputs: []Output{
		{Name: "report", Kind: ref.KindFile}, {Name: "shards", Kind: ref.KindDirectory},
		{Name: "small", Kind: ref.KindValue, Type: "object"}, {Name: "big", Kind: ref.KindValue, Type: "object"},
		// Optional and not written: the task gave it in its outputs JSON.
		{Name: "elsewhere", Kind: ref.KindValue, Type: "string", Optional: true},
	}}
	big := `{"rows": "` + strings.Repeat("x", 10_000) + `"}`
	write(t, filepath.Join(up.Dir, "outputs/report"), "total 42\n")
	write(t, filepath.Join(up.Dir, "outputs/shards/0.csv"), "a,b\n")
	write(t, filepath.Join(up.Dir, "outputs/shards/deep/1.csv"), "c,d\n")
	write(t, filepath.Join(up.Dir, "outputs/small"), " {\"n\": 3}\n")
	write(t, filepath.Join(up.Dir, "outputs/big"), big)
	res, err := Upload(ctx, s, up)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Outputs["small"]) != `{"n": 3}` {
		t.Fatalf("small value = %s, want it inline", res.Outputs["small"])
	}
	off, ok, err := ref.ParseOffloaded(res.Outputs["big"])
	if !ok || err != nil || off.Size != int64(len(big)) || !ref.Within(off.URI, up.Prefix) {
		t.Fatalf("big value = %s (%v, %v), want a reference under %s", res.Outputs["big"], ok, err, up.Prefix)
	}
	var file, dir ref.Ref
	_ = json.Unmarshal(res.Outputs["report"], &file)
	_ = json.Unmarshal(res.Outputs["shards"], &dir)
	if file.Size != 9 || !ref.Within(file.URI, up.Prefix) || dir.Files != 2 || dir.Size != 8 || !dir.IsDir() || !ref.Within(dir.URI, up.Prefix) {
		t.Fatalf("file %+v, directory %+v", file, dir)
	}
	if len(res.Outputs) != 4 {
		t.Fatalf("%d outputs reported, want 4: %v", len(res.Outputs), res.Outputs)
	}

	down := &Spec{Store: s.Root(), Dir: t.TempDir(), Inputs: []Input{
		{Name: "report", Kind: ref.KindFile, Ref: file}, {Name: "shards", Kind: ref.KindDirectory, Ref: dir},
		{Name: "big", Kind: ref.KindValue, Ref: off},
	}}
	if err := Download(ctx, s, down); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"report": "total 42\n", "shards/0.csv": "a,b\n", "shards/deep/1.csv": "c,d\n", "big": big} {
		b, err := os.ReadFile(filepath.Join(down.Dir, "inputs", path))
		if err != nil || string(b) != want {
			t.Fatalf("inputs/%s = %.40q (%v), want %.40q", path, b, err, want)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(down.Dir, "inputs", ".rotor-download-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

// TestFailuresAreSorted: what the task (or its input) did wrong fails the
// node with the object named; what the store did is a system failure.
func TestFailuresAreSorted(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t)
	p := prefix(t, s, "a", 0)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "outputs/f"), strings.Repeat("y", 100))
	write(t, filepath.Join(dir, "outputs/notjson"), "{oops")
	write(t, filepath.Join(dir, "outputs/fake"), `{"$ref": {"uri": "s3://other/secret", "size": 1, "sha256": "`+strings.Repeat("a", 64)+`"}}`)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "outputs", "linkdir")); err == nil {
		_ = os.Mkdir(filepath.Join(dir, "outputs", "d"), 0o755)
		_ = os.Symlink("/etc/passwd", filepath.Join(dir, "outputs", "d", "passwd"))
	}
	good, err := s.Put(ctx, p+"outputs/x", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	down, err := store.Open(ctx, store.Config{URL: "s3://bucket?endpoint=http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	_ = os.WriteFile(filepath.Join(dir, "outputs/ok"), []byte("fine"), 0o644)
	for _, c := range []struct {
		name   string
		run    func() error
		system bool
		says   string
	}{
		{"output not written", func() error {
			_, err := Upload(ctx, s, &Spec{Prefix: p, Dir: dir, Outputs: []Output{{Name: "missing", Kind: ref.KindFile}}})
			return err
		}, false, "did not write"},
		{"output over the limit", func() error {
			_, err := Upload(ctx, s, &Spec{Prefix: p, Dir: dir, MaxOutputBytes: 10, Outputs: []Output{{Name: "f", Kind: ref.KindFile}}})
			return err
		}, false, "over the limit of 10"},
		{"value not JSON", func() error {
			_, err := Upload(ctx, s, &Spec{Prefix: p, Dir: dir, Outputs: []Output{{Name: "notjson", Kind: ref.KindValue}}})
			return err
		}, false, "does not hold one JSON value"},
		{"value forging a reference", func() error {
			_, err := Upload(ctx, s, &Spec{Prefix: p, Dir: dir, Outputs: []Output{{Name: "fake", Kind: ref.KindValue}}})
			return err
		}, false, "reserved"},
		{"value of another kind than declared", func() error {
			_ = os.WriteFile(filepath.Join(dir, "outputs/rows"), []byte("  {\"a\": 1}"), 0o644)
			_, err := Upload(ctx, s, &Spec{Prefix: p, Dir: dir, Outputs: []Output{{Name: "rows", Kind: ref.KindValue, Type: "array"}}})
			return err
		}, false, "declared array"},
		{"an optional output still must be written right", func() error {
			_ = os.WriteFile(filepath.Join(dir, "outputs/name"), []byte("[1]"), 0o644)
			_, err := Upload(ctx, s, &Spec{Prefix: p, Dir: dir, Outputs: []Output{{Name: "name", Kind: ref.KindValue, Type: "string", Optional: true}}})
			return err
		}, false, "declared string"},
		{"a link in a directory", func() error {
			_, err := Upload(ctx, s, &Spec{Prefix: p, Dir: dir, Outputs: []Output{{Name: "d", Kind: ref.KindDirectory}}})
			return err
		}, false, "not a regular file"},
		{"input object missing", func() error {
			gone := good
			gone.URI = p + "outputs/never-written"
			return Download(ctx, s, &Spec{Dir: t.TempDir(), Inputs: []Input{{Name: "x", Kind: ref.KindFile, Ref: gone}}})
		}, false, "never-written"},
		{"input changed", func() error {
			changed := good
			changed.SHA256 = strings.Repeat("0", 64)
			return Download(ctx, s, &Spec{Dir: t.TempDir(), Inputs: []Input{{Name: "x", Kind: ref.KindFile, Ref: changed}}})
		}, false, "changed after it was written"},
		{"store down on upload", func() error {
			_, err := Upload(ctx, down, &Spec{Prefix: "s3://bucket/team/wf/u1/a/0/", Dir: dir, Outputs: []Output{{Name: "ok", Kind: ref.KindFile}}})
			return err
		}, true, "upload"},
		{"store down on download", func() error {
			r := good
			r.URI = "s3://bucket/team/wf/u1/a/0/outputs/x"
			return Download(ctx, down, &Spec{Dir: t.TempDir(), Inputs: []Input{{Name: "x", Kind: ref.KindFile, Ref: r}}})
		}, true, "download"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an agent.Error", err)
			}
			if ae.System != c.system || !strings.Contains(ae.Msg, c.says) {
				t.Fatalf("error %q (system %v), want system %v and %q in it", ae.Msg, ae.System, c.system, c.says)
			}
		})
	}
}

// TestDirectoryChangedAfterItWasWritten: a directory whose manifest no
// longer matches its reference is refused before any file is fetched.
func TestDirectoryChangedAfterItWasWritten(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "outputs/d/a"), "1")
	res, err := Upload(ctx, s, &Spec{Prefix: prefix(t, s, "a", 0), Dir: dir, Outputs: []Output{{Name: "d", Kind: ref.KindDirectory}}})
	if err != nil {
		t.Fatal(err)
	}
	var r ref.Ref
	_ = json.Unmarshal(res.Outputs["d"], &r)
	m, _ := ref.NewManifest([]ref.Entry{{Path: "a", Size: 1, SHA256: strings.Repeat("b", 64)}})
	if _, err := s.Put(ctx, r.URI+ref.ManifestName, bytes.NewReader(m.Encode())); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	err = Download(ctx, s, &Spec{Dir: out, Inputs: []Input{{Name: "d", Kind: ref.KindDirectory, Ref: r}}})
	if err == nil || !strings.Contains(err.Error(), "changed after it was written") {
		t.Fatalf("Download of a changed directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "inputs", "d", "a")); err == nil {
		t.Fatal("a file of the changed directory was downloaded")
	}
}
