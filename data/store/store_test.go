package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/data/ref"
)

// Exercise runs the Store contract against s: put and reference, fetch
// with verification, a changed object refused, list, delete, a missing
// object, and URIs outside the root refused. The S3 test runs it against
// a real S3 server (e2e/data).
func Exercise(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	a := ref.Attempt{Namespace: "team", Workflow: "wf", WorkflowUID: "u1", Node: "a", Attempt: 0}
	prefix, err := a.Prefix(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	uri, _ := ref.Output(prefix, "report", ref.KindFile)
	body := bytes.Repeat([]byte("rotor "), 100_000) // 600 kB
	r, err := s.Put(ctx, uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.URI != uri || r.Size != int64(len(body)) || r.Check() != nil || !ref.Within(r.URI, prefix) {
		t.Fatalf("Put returned %+v (check %v)", r, r.Check())
	}
	var got bytes.Buffer
	if err := s.Fetch(ctx, r, &got); err != nil || !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("Fetch: %v, %d bytes back of %d", err, got.Len(), len(body))
	}
	// Another object under the same name (a writer that went behind
	// Rotor's back) no longer matches its reference.
	if _, err := s.Put(ctx, uri, strings.NewReader("something else")); err != nil {
		t.Fatal(err)
	}
	var mm *Mismatch
	if err := s.Fetch(ctx, r, io.Discard); !errors.As(err, &mm) || mm.GotSize != int64(len("something else")) {
		t.Fatalf("Fetch of a changed object: %v, want a size mismatch", err)
	}
	same := ref.Ref{URI: uri, Size: int64(len("something ELSE")), SHA256: r.SHA256}
	if err := s.Fetch(ctx, same, io.Discard); !errors.As(err, &mm) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Fetch with the right size and a wrong digest: %v, want a digest mismatch", err)
	}
	second, _ := ref.Output(prefix, "more", ref.KindFile)
	if _, err := s.Put(ctx, second, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	var listed []Object
	if err := s.List(ctx, prefix, func(o Object) error { listed = append(listed, o); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0].URI != second || listed[1].URI != uri || listed[0].Size != 1 {
		t.Fatalf("List(%s) = %+v, want %s (1 byte) then %s", prefix, listed, second, uri)
	}
	if err := s.Delete(ctx, uri); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, uri); err != nil {
		t.Fatalf("deleting a missing object: %v", err)
	}
	if _, err := s.Get(ctx, uri); !IsNotFound(err) {
		t.Fatalf("Get of a deleted object: %v, want not found", err)
	}
	for _, outside := range []string{"s3://elsewhere/k", s.Root(), strings.TrimSuffix(s.Root(), "/") + "x/k"} {
		if _, err := s.Put(ctx, outside, strings.NewReader("x")); err == nil {
			t.Errorf("Put to %s outside the root %s was accepted", outside, s.Root())
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{URL: "file://" + dir + "/raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Root() != "file://"+dir+"/raw/" {
		t.Fatalf("Root = %s", s.Root())
	}
	Exercise(t, s)
	// No half-written object is ever visible: a failed source leaves
	// nothing under the name.
	uri := s.Root() + "team/wf/u1/b/0/outputs/broken"
	if _, err := s.Put(context.Background(), uri, io.MultiReader(strings.NewReader("half"), failing{})); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "raw/team/wf/u1/b/0/outputs/broken")); !os.IsNotExist(err) {
		t.Fatalf("a failed write left an object: %v", err)
	}
}

func TestOpenRefusals(t *testing.T) {
	for _, c := range []Config{
		{URL: "bucket/prefix"},
		{URL: "gs://bucket"},
		{URL: "s3:///prefix"},
		{URL: "s3://b?endpont=http://x"},
		{URL: "s3://b", AccessKeyID: "only-half"},
		{URL: "file://host/dir"},
	} {
		if s, err := Open(context.Background(), c); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", c)
		}
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("source broke") }

// TestHealthAsksOncePerTTL: answers are kept for the ttl, then asked
// again; a store that stops answering is reported at the next ask.
func TestHealthAsksOncePerTTL(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	asks := 0
	var answer error
	h := NewHealth(func(context.Context) error { asks++; return answer }, 5*time.Second, func() time.Time { return now })
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if err := h.Err(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if asks != 1 {
		t.Fatalf("%d asks for 10 questions within the ttl, want 1", asks)
	}
	answer = errors.New("connection refused")
	now = now.Add(4 * time.Second)
	if err := h.Err(ctx); err != nil || asks != 1 {
		t.Fatalf("within the ttl: %v after %d asks, want the kept answer", err, asks)
	}
	now = now.Add(2 * time.Second)
	if err := h.Err(ctx); err == nil || asks != 2 {
		t.Fatalf("after the ttl: %v after %d asks, want the store's refusal on a second ask", err, asks)
	}
}
