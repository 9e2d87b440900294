package location

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/data/ref"
)

// TestResolver: a namespace without annotations gets the install's
// location; one naming its own gets that, opened once; its Secret is read
// again after SecretTTL and the location reopened only when the
// credentials changed; a missing Secret is an error naming it.
func TestResolver(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	base := t.TempDir()
	def, err := Open(ctx, "file://"+base, nil, "", 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	// The tenant's location lies inside the install's directory: reads
	// must still go to the tenant's (the longest root).
	tenantURL := "file://" + base + "/tenant-a"
	ann := map[string]map[string]string{
		"team-a":  {AnnotURL: tenantURL, AnnotSecret: "team-a-raw"},
		"broken":  {AnnotURL: tenantURL, AnnotSecret: "missing"},
		"default": {},
	}
	creds := map[string]string{"team-a-raw": "key-1"}
	reads := 0
	r := &Resolver{Default: def, Now: clock,
		Annotations: func(ns string) (map[string]string, error) { return ann[ns], nil },
		Secret: func(_ context.Context, name string) (map[string][]byte, error) {
			reads++
			k, ok := creds[name]
			if !ok {
				return nil, errString("secrets \"" + name + "\" not found")
			}
			return map[string][]byte{"accessKeyID": []byte(k), "secretAccessKey": []byte("s")}, nil
		}}
	if l, err := r.For(ctx, "default"); err != nil || l != def {
		t.Fatalf("a namespace without annotations: %v, %v; want the install's", l, err)
	}
	a1, err := r.For(ctx, "team-a")
	if err != nil || a1 == def || a1.AccessKeyID != "key-1" || !strings.HasSuffix(a1.Root(), "/tenant-a/") {
		t.Fatalf("team-a: %+v, %v; want its own location with its credentials", a1, err)
	}
	if a, _ := r.For(ctx, "team-a"); a != a1 || reads != 1 {
		t.Fatalf("asked again within the TTL: a new location (%v) or %d Secret reads, want the same and 1", a != a1, reads)
	}
	now = now.Add(SecretTTL + time.Second)
	if a, _ := r.For(ctx, "team-a"); a != a1 || reads != 2 {
		t.Fatalf("after the TTL, same credentials: reopened (%v), %d reads; want the same location and a second read", a != a1, reads)
	}
	creds["team-a-raw"] = "key-2"
	now = now.Add(SecretTTL + time.Second)
	a2, err := r.For(ctx, "team-a")
	if err != nil || a2 == a1 || a2.AccessKeyID != "key-2" {
		t.Fatalf("after a rotation: %+v, %v; want a location with the new key", a2, err)
	}
	if _, err := r.For(ctx, "broken"); err == nil || !strings.Contains(err.Error(), `"missing"`) || !strings.Contains(err.Error(), AnnotSecret) {
		t.Fatalf("a missing Secret: %v, want an error naming it and the annotation", err)
	}

	// Values: prefixes in the namespace's location; reads by URI go to
	// the location holding it, the longest root first.
	v := Values{R: r}
	if root := v.Root("team-a"); root != a2.Root() {
		t.Fatalf("Root(team-a) = %s, want %s", root, a2.Root())
	}
	prefix := ref.Join(v.Root("team-a"), "team-a", "wf", "u", "a", "0") + "/"
	big := json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)
	out, err := v.Offload(ctx, prefix, "v", big)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Materialize(ctx, out); err != nil || string(got) != string(big) {
		t.Fatalf("Materialize: %d bytes, %v", len(got), err)
	}
	if l, _ := v.byURI(prefix + "values/x"); l != a2 {
		t.Fatalf("byURI chose %s, want the tenant's location nested in the install's", l.Root())
	}
	if _, err := v.Materialize(ctx, json.RawMessage(`{"$ref": {"uri": "s3://elsewhere/x.json", "size": 5000, "sha256": "`+strings.Repeat("ab", 32)+`"}}`)); err == nil {
		t.Fatal("a value in no known location was read")
	}
	locs, errs := r.Tenants(ctx, []string{"team-a", "broken", "default", "team-a"})
	if len(locs) != 1 || locs[0] != a2 || len(errs) != 1 {
		t.Fatalf("Tenants = %d locations, %d errors; want team-a's once and broken's error", len(locs), len(errs))
	}
}

type errString string

func (e errString) Error() string { return string(e) }
