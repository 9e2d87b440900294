package sweep

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/data/ref"
)

const root = "s3://raw/p/"

var (
	now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	sum = strings.Repeat("ab", 32)
)

func obj(path string, age time.Duration) Object {
	return Object{URI: root + path, Size: 10, Modified: now.Add(-age)}
}

func at(d time.Duration) *time.Time { t := now.Add(-d); return &t }

// TestPlan: the objects of a deleted workflow go, except those a cache
// entry or a staying workflow references (a file exactly, a directory by
// prefix) and those too recent; a finished workflow's go once its
// namespace's retention passed, and an expiring workflow protects
// nothing; a running one, one without retention, and objects outside
// the layout stay.
func TestPlan(t *testing.T) {
	in := Input{
		Root: root, Now: now, Grace: 10 * time.Minute,
		Objects: []Object{
			obj("team-a/gone/u1/a/0/outputs/report", time.Hour),
			obj("team-a/gone/u1/a/0/outputs/cached", time.Hour),
			obj("team-a/gone/u1/b/0/outputs/shards/part-0", time.Hour),
			obj("team-a/gone/u1/b/0/outputs/shards/.rotor-manifest.json", time.Hour),
			obj("team-a/gone/u1/b/0/outputs/shardsx", time.Hour), // beside the directory, not in it
			obj("team-a/gone/u1/c/0/outputs/late", time.Minute),  // within the grace
			obj("team-a/recovered-from/u2/a/0/outputs/model", time.Hour),
			obj("team-a/live/u3/a/0/outputs/x", 48*time.Hour),
			obj("team-a/live/u-old/a/0/outputs/x", 48*time.Hour), // same name, older UID: that one was deleted
			obj("team-b/old/u4/a/0/outputs/x", 48*time.Hour),
			obj("team-b/old/u4/a/0/outputs/y", 48*time.Hour),
			obj("team-b/fresh/u5/a/0/outputs/x", 48*time.Hour),
			obj("team-b/running/u6/a/0/outputs/x", 48*time.Hour),
			obj("team-c/old/u7/a/0/outputs/x", 48*time.Hour),
			obj("stray.txt", 48*time.Hour),
			obj("team-a/_uploads/id1/train.csv", 48*time.Hour),      // named by live's spec
			obj("team-a/_uploads/id2/old.csv", 48*time.Hour),        // named by nothing
			obj("team-a/_uploads/id3/just-now.csv", 30*time.Minute), // named by nothing yet
		},
		Workflows: []Workflow{
			{Namespace: "team-a", Name: "live", UID: "u3", Finished: at(30 * time.Hour),
				// A recovered run's status points into the workflow it recovered from.
				Refs: []ref.Ref{{URI: root + "team-a/recovered-from/u2/a/0/outputs/model", SHA256: sum},
					{URI: root + "team-a/_uploads/id1/train.csv", SHA256: sum}}},
			{Namespace: "team-b", Name: "old", UID: "u4", Finished: at(25 * time.Hour),
				// Expiring: what it references is not protected by it.
				Refs: []ref.Ref{{URI: root + "team-b/fresh/u5/a/0/outputs/x", SHA256: sum}}},
			{Namespace: "team-b", Name: "fresh", UID: "u5", Finished: at(time.Hour)},
			{Namespace: "team-b", Name: "running", UID: "u6"},
			{Namespace: "team-c", Name: "old", UID: "u7", Finished: at(1000 * time.Hour)},
		},
		Retention: func(ns string) time.Duration {
			return map[string]time.Duration{"team-b": 24 * time.Hour}[ns] // team-a, team-c: keep while the workflow exists
		},
		CacheRefs: []ref.Ref{
			{URI: root + "team-a/gone/u1/a/0/outputs/cached", SHA256: sum},
			{URI: root + "team-a/gone/u1/b/0/outputs/shards/", SHA256: sum, Files: 1},
		},
	}
	res := Plan(in)
	want := []string{
		root + "team-a/_uploads/id2/old.csv",
		root + "team-a/gone/u1/a/0/outputs/report",
		root + "team-a/gone/u1/b/0/outputs/shardsx",
		root + "team-a/live/u-old/a/0/outputs/x",
		root + "team-b/old/u4/a/0/outputs/x",
		root + "team-b/old/u4/a/0/outputs/y",
	}
	if !slices.Equal(res.Delete, want) {
		t.Fatalf("Delete =\n  %s\nwant\n  %s", strings.Join(res.Delete, "\n  "), strings.Join(want, "\n  "))
	}
	if res.Bytes != 60 || res.Protected != 5 || res.Recent != 2 {
		t.Fatalf("bytes %d, protected %d, recent %d; want 60, 5 (three by the cache, the directory and its manifest among them; one by the recovered run, one upload by the spec), 2 (the upload within its hour)", res.Bytes, res.Protected, res.Recent)
	}
	if res.Gone[root+"team-a/gone/u1/"] != "deleted" || res.Gone[root+"team-b/old/u4/"] != "expired" || len(res.Gone) != 4 {
		t.Fatalf("Gone = %v", res.Gone)
	}
	// Nothing at all goes when every workflow stays and none expired.
	in.Objects = in.Objects[6:8]
	if res := Plan(in); len(res.Delete) != 0 {
		t.Fatalf("deleted %v of workflows that stay", res.Delete)
	}
}

// TestRefs: references are found at any depth, in files, directories,
// offloaded values and lists of them; look-alikes are not.
func TestRefs(t *testing.T) {
	raw := json.RawMessage(`{
		"file": {"uri": "s3://raw/p/a/f", "size": 1, "sha256": "` + sum + `"},
		"list": [{"uri": "s3://raw/p/a/d/", "size": 2, "sha256": "` + sum + `", "files": 2}, 3, "x"],
		"big": {"$ref": {"uri": "s3://raw/p/a/v.json", "size": 9000, "sha256": "` + sum + `"}},
		"notref": {"uri": "s3://raw/p/a/g", "sha256": "short"},
		"deep": {"a": {"b": [{"uri": "s3://raw/p/a/h", "size": 1, "sha256": "` + sum + `"}]}}
	}`)
	var uris []string
	for _, r := range Refs(raw) {
		uris = append(uris, r.URI)
	}
	slices.Sort(uris)
	if want := []string{"s3://raw/p/a/d/", "s3://raw/p/a/f", "s3://raw/p/a/h", "s3://raw/p/a/v.json"}; !slices.Equal(uris, want) {
		t.Fatalf("Refs = %v, want %v", uris, want)
	}
	if len(Refs(json.RawMessage(`12`))) != 0 || len(Refs(json.RawMessage(`not json`))) != 0 {
		t.Fatal("references found in a number or in broken JSON")
	}
}
