package sweep

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

type fakeSource struct {
	workflows []Workflow
	cache     map[string][]ref.Ref
	listed    []string // namespaces asked about
}

func (f *fakeSource) Workflows(context.Context) ([]Workflow, error) { return f.workflows, nil }
func (f *fakeSource) Retention(_ context.Context, ns string) (time.Duration, error) {
	f.listed = append(f.listed, ns)
	return 0, nil
}
func (f *fakeSource) CacheRefs(_ context.Context, ns string) ([]ref.Ref, error) {
	return f.cache[ns], nil
}

// TestSweepDeletesFromARealStore: over a file:// store, one sweep deletes
// the deleted workflow's objects but the one its cache entry names, and
// leaves the live workflow's; it asks about each namespace with data
// once.
func TestSweepDeletesFromARealStore(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(path string) ref.Ref {
		r, err := st.Put(ctx, st.Root()+path, strings.NewReader("data of "+path))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	put("team-a/gone/u1/a/0/outputs/x")
	kept := put("team-a/gone/u1/a/0/outputs/cached")
	put("team-a/live/u2/a/0/outputs/x")
	put("team-b/gone/u3/a/0/outputs/x")
	src := &fakeSource{
		workflows: []Workflow{{Namespace: "team-a", Name: "live", UID: "u2"}},
		cache:     map[string][]ref.Ref{"team-a": {kept}},
	}
	clk := clocktesting.NewFakeClock(time.Now().Add(time.Hour)) // past the grace
	s := &Sweeper{Store: st, Source: src, Clock: clk, Interval: time.Minute, Grace: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Delete) != 2 || res.Protected != 1 {
		t.Fatalf("deleted %v, protected %d; want 2 deleted and 1 protected", res.Delete, res.Protected)
	}
	var left []string
	_ = st.List(ctx, st.Root(), func(o store.Object) error {
		left = append(left, strings.TrimPrefix(o.URI, st.Root()))
		return nil
	})
	if want := []string{"team-a/gone/u1/a/0/outputs/cached", "team-a/live/u2/a/0/outputs/x"}; !slices.Equal(left, want) {
		t.Fatalf("left in the store: %v, want %v", left, want)
	}
	if !slices.Equal(src.listed, []string{"team-a", "team-b"}) {
		t.Fatalf("asked about namespaces %v, want team-a and team-b once each", src.listed)
	}
	// Right after writing (the real clock), the grace spares everything.
	put("team-b/gone/u3/a/0/outputs/again")
	s.Clock = clocktesting.NewFakeClock(time.Now())
	if res, err := s.Sweep(ctx); err != nil || len(res.Delete) != 0 || res.Recent != 2 {
		t.Fatalf("a fresh object: deleted %v (%v), recent %d; want both of the deleted workflow's objects spared", res.Delete, err, res.Recent)
	}
}

// TestSweepCoversTenantLocations: a tenant's own location is listed and
// swept with the install's, each object deleted from its own store.
func TestSweepCoversTenantLocations(t *testing.T) {
	ctx := context.Background()
	open := func() *store.Store {
		st, err := store.Open(ctx, store.Config{URL: "file://" + t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	install, tenant := open(), open()
	for _, st := range []*store.Store{install, tenant} {
		for _, p := range []string{"team-a/gone/u1/a/0/outputs/x", "team-a/live/u2/a/0/outputs/x"} {
			if _, err := st.Put(ctx, st.Root()+p, strings.NewReader(p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := &Sweeper{Store: install, Source: &fakeSource{workflows: []Workflow{{Namespace: "team-a", Name: "live", UID: "u2"}}},
		Tenants: func(context.Context) ([]Store, error) { return []Store{tenant, install}, nil }, // the install's named twice: swept once
		Clock:   clocktesting.NewFakeClock(time.Now().Add(time.Hour)), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res, err := s.Sweep(ctx)
	if err != nil || len(res.Delete) != 2 {
		t.Fatalf("deleted %v (%v), want the deleted workflow's object in each location", res.Delete, err)
	}
	for _, st := range []*store.Store{install, tenant} {
		var left []string
		_ = st.List(ctx, st.Root(), func(o store.Object) error { left = append(left, strings.TrimPrefix(o.URI, st.Root())); return nil })
		if !slices.Equal(left, []string{"team-a/live/u2/a/0/outputs/x"}) {
			t.Fatalf("left in %s: %v", st.Root(), left)
		}
	}
}
