package offload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

func open(t *testing.T) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Config{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

func bigArray(n int) json.RawMessage {
	items := make([]string, n)
	for i := range items {
		items[i] = strings.Repeat("x", 100)
	}
	b, _ := json.Marshal(items)
	return b
}

func TestOffloadAndLoad(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	o := New(st, 0, 0)
	prefix := ref.Join(st.Root(), "ns", "wf", "uid", "m", "0") + "/"

	small := json.RawMessage(`{"a": 1}`)
	if got, err := o.Offload(ctx, prefix, "x", small); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("a small value: %s, %v; want it inline", got, err)
	}
	// Spaces alone do not make a value large: it is compacted first.
	padded := json.RawMessage(`[` + strings.Repeat(" ", 5000) + `1]`)
	if got, err := o.Offload(ctx, prefix, "x", padded); err != nil || string(got) != "[1]" {
		t.Fatalf("a padded small value: %s, %v; want [1] inline", got, err)
	}

	big := bigArray(100) // about 10 KB
	out, err := o.Offload(ctx, prefix, "items", big)
	if err != nil {
		t.Fatal(err)
	}
	r, isRef, err := ref.ParseOffloaded(out)
	if err != nil || !isRef {
		t.Fatalf("a %d-byte value came back as %s (%v), want a reference", len(big), out, err)
	}
	if len(out) > 400 || r.Size != int64(len(big)) || !ref.Within(r.URI, prefix) {
		t.Fatalf("reference %s: size %d (want %d), within %s: %v", out, r.Size, len(big), prefix, ref.Within(r.URI, prefix))
	}
	// Offloading it again (a round redone) names the same object, and
	// writes nothing: the store is asked once.
	counting := &countingStore{Store: st}
	co := New(counting, 0, 0)
	for i := 0; i < 3; i++ {
		again, err := co.Offload(ctx, prefix, "items", big)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("offloaded again: %s, %v; want %s", again, err, out)
		}
	}
	if counting.puts != 1 {
		t.Fatalf("%d PUTs for one value offloaded three times, want 1", counting.puts)
	}
	// A reference passes through untouched.
	if same, err := o.Offload(ctx, prefix, "items", out); err != nil || !bytes.Equal(same, out) {
		t.Fatalf("a reference was offloaded again: %s, %v", same, err)
	}

	// Read back by a fresh Offloader (no cache): the same bytes.
	fresh := New(st, 0, 0)
	got, err := fresh.Materialize(ctx, out)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Materialize: %d bytes, %v; want the %d stored", len(got), err, len(big))
	}
	if got, err := fresh.Materialize(ctx, small); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("Materialize of an inline value: %s, %v", got, err)
	}
}

func TestLoadRefusesChangedAndTooLarge(t *testing.T) {
	ctx := context.Background()
	st, dir := open(t)
	prefix := ref.Join(st.Root(), "ns", "wf", "uid", "a", "0") + "/"
	out, err := New(st, 0, 0).Offload(ctx, prefix, "v", bigArray(100))
	if err != nil {
		t.Fatal(err)
	}
	r, _, _ := ref.ParseOffloaded(out)

	// Too large for this propeller's bound: refused before any read.
	_, err = New(st, 1000, 0).Load(ctx, r)
	var tl *TooLarge
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "--max-value-bytes") {
		t.Fatalf("Load over the bound: %v, want TooLarge naming the flag", err)
	}

	// Changed in the store after it was written: a mismatch, not a value.
	path := filepath.Join(dir, strings.TrimPrefix(r.URI, st.Root()))
	if err := os.WriteFile(path, bytes.Replace(mustRead(t, path), []byte("x"), []byte("y"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(st, 0, 0).Load(ctx, r); !IsNotFound(err) || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("Load of a changed object: %v, want a mismatch", err)
	}
	// Missing: not found.
	os.Remove(path)
	if _, err := New(st, 0, 0).Load(ctx, r); !IsNotFound(err) {
		t.Fatalf("Load of a missing object: %v, want not found", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	prefix := ref.Join(st.Root(), "ns", "wf", "uid", "a", "0") + "/"
	o := New(st, 0, 24_000) // room for four of these 5 KB values
	var refs []json.RawMessage
	for i := 0; i < 6; i++ {
		v := bigArray(50 + i)
		out, err := o.Offload(ctx, prefix, "v", v)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, out)
	}
	if o.used > o.capacity || o.lru.Len() == 0 || o.lru.Len() > 4 {
		t.Fatalf("cache holds %d values, %d bytes; want 1 to 4 within %d", o.lru.Len(), o.used, o.capacity)
	}
	// The newest is cached; every one still loads from the store.
	r, _, _ := ref.ParseOffloaded(refs[5])
	if _, ok := o.cached(r.SHA256); !ok {
		t.Error("the newest value is not cached")
	}
	for i, out := range refs {
		if _, err := o.Materialize(ctx, out); err != nil {
			t.Errorf("value %d: %v", i, err)
		}
	}
}

func TestFiles(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	dirURI := ref.Join(st.Root(), "ns", "wf", "uid", "split", "0", "outputs", "shards") + "/"
	var entries []ref.Entry
	for _, name := range []string{"b.csv", "a.csv", "sub/c.csv"} {
		r, err := st.Put(ctx, dirURI+name, strings.NewReader("data of "+name))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, ref.Entry{Path: name, Size: r.Size, SHA256: r.SHA256})
	}
	m, err := ref.NewManifest(entries)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, dirURI+ref.ManifestName, bytes.NewReader(m.Encode())); err != nil {
		t.Fatal(err)
	}
	o := New(st, 0, 0)
	files, paths, err := o.Files(ctx, m.Ref(dirURI))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(paths, ",") != "a.csv,b.csv,sub/c.csv" || len(files) != 3 {
		t.Fatalf("Files = %v, want a.csv, b.csv, sub/c.csv in order", paths)
	}
	for i, f := range files {
		var buf bytes.Buffer
		if err := st.Fetch(ctx, f, &buf); err != nil || buf.String() != "data of "+paths[i] {
			t.Errorf("file %s: %q, %v", paths[i], buf.String(), err)
		}
	}
	// Listed again (a map's next round), the manifest is not read again.
	counting := &countingStore{Store: st}
	co := New(counting, 0, 0)
	for i := 0; i < 3; i++ {
		if _, _, err := co.Files(ctx, m.Ref(dirURI)); err != nil {
			t.Fatal(err)
		}
	}
	if counting.gets != 1 {
		t.Fatalf("%d manifest reads for three listings, want 1", counting.gets)
	}
	// A reference whose digest is not the manifest's is refused.
	bad := m.Ref(dirURI)
	bad.SHA256 = strings.Repeat("0", 64)
	if _, _, err := o.Files(ctx, bad); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("Files with a wrong digest: %v", err)
	}
	if _, _, err := o.Files(ctx, files[0]); err == nil {
		t.Fatal("Files of a file reference succeeded")
	}
}

type countingStore struct {
	*store.Store
	puts, gets int
}

func (c *countingStore) Get(ctx context.Context, uri string) (io.ReadCloser, error) {
	c.gets++
	return c.Store.Get(ctx, uri)
}

func (c *countingStore) Put(ctx context.Context, uri string, r io.Reader) (ref.Ref, error) {
	c.puts++
	return c.Store.Put(ctx, uri, r)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
