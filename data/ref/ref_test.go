package ref

import (
	"encoding/json"
	"strings"
	"testing"
)

const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestPrefixScheme(t *testing.T) {
	a := Attempt{Namespace: "team-a", Workflow: "train", WorkflowUID: "3f2c", Node: "m/3", Attempt: 1}
	for _, root := range []string{"s3://rotor-data/raw", "s3://rotor-data/raw/"} {
		p, err := a.Prefix(root)
		if err != nil {
			t.Fatal(err)
		}
		if want := "s3://rotor-data/raw/team-a/train/3f2c/m.3/1/"; p != want {
			t.Fatalf("Prefix(%q) = %q, want %q", root, p, want)
		}
	}
	// A retry writes beside the attempt before it, never over it.
	first, _ := a.Prefix("s3://b")
	a.Attempt = 2
	second, _ := a.Prefix("s3://b")
	if first == second || strings.HasPrefix(second, first) || strings.HasPrefix(first, second) {
		t.Fatalf("attempts 1 and 2 share objects: %q, %q", first, second)
	}
	wp, err := WorkflowPrefix("s3://b", "team-a", "train", "3f2c")
	if err != nil || !strings.HasPrefix(second, wp) || wp != "s3://b/team-a/train/3f2c/" {
		t.Fatalf("WorkflowPrefix = %q, %v; want the parent of %q", wp, err, second)
	}
	for _, bad := range []Attempt{
		{Namespace: "", Workflow: "w", WorkflowUID: "u", Node: "a"},
		{Namespace: "n", Workflow: "..", WorkflowUID: "u", Node: "a"},
		{Namespace: "n", Workflow: "w", WorkflowUID: "u", Node: ".."},
		{Namespace: "n", Workflow: "w", WorkflowUID: "u", Node: "a?b"},
		{Namespace: "n", Workflow: "w", WorkflowUID: "u", Node: "a", Attempt: -1},
	} {
		if p, err := bad.Prefix("s3://b"); err == nil {
			t.Errorf("Prefix of %+v = %q, want an error", bad, p)
		}
	}
}

func TestNodePathsAreOneSegment(t *testing.T) {
	// A map item (m/3) and a nested node (sub/a) each get one segment of
	// their own, so two different paths never share a prefix.
	seen := map[string]string{}
	for _, node := range []string{"m/3", "m/30", "sub/a", "sub/a/b", "m"} {
		p, err := Attempt{Namespace: "n", Workflow: "w", WorkflowUID: "u", Node: node}.Prefix("s3://b")
		if err != nil {
			t.Fatalf("Prefix(%s): %v", node, err)
		}
		for other, q := range seen {
			if strings.HasPrefix(p, q) || strings.HasPrefix(q, p) {
				t.Errorf("%s (%s) and %s (%s) share objects", node, p, other, q)
			}
		}
		seen[node] = p
	}
	if got := seen["m/3"]; got != "s3://b/n/w/u/m.3/0/" {
		t.Errorf("m/3's prefix = %q", got)
	}
}

func TestValueNames(t *testing.T) {
	p := "s3://b/ns/wf/u/m/0/"
	got, err := Value(p, "total", digest)
	if err != nil || got != "s3://b/ns/wf/u/m/0/values/total-9f86d081884c7d65.json" || !Within(got, p) {
		t.Fatalf("Value = %q, %v", got, err)
	}
	if _, err := Value(p, "../x", digest); err == nil {
		t.Error("Value accepted a name that climbs out")
	}
}

func TestOutputNames(t *testing.T) {
	p := "s3://b/ns/wf/u/a/0/"
	for kind, want := range map[Kind]string{
		KindFile:      "s3://b/ns/wf/u/a/0/outputs/model",
		KindDirectory: "s3://b/ns/wf/u/a/0/outputs/model/",
		KindValue:     "s3://b/ns/wf/u/a/0/outputs/model.json",
	} {
		got, err := Output(p, "model", kind)
		if err != nil || got != want {
			t.Errorf("Output(%s) = %q, %v; want %q", kind, got, err, want)
		}
		if !Within(got, p) {
			t.Errorf("%s output %q is not within its attempt's prefix", kind, got)
		}
	}
	if _, err := Output(p, "../x", KindFile); err == nil {
		t.Error("an output name with a slash was accepted")
	}
}

func TestWithin(t *testing.T) {
	p := "s3://b/ns/wf/u/a/0/"
	for uri, want := range map[string]bool{
		"s3://b/ns/wf/u/a/0/outputs/x":     true,
		"s3://b/ns/wf/u/a/0/outputs/d/":    true,
		"s3://b/ns/wf/u/a/0/":              false, // the prefix itself
		"s3://b/ns/wf/u/a/1/outputs/x":     false, // another attempt
		"s3://b/ns/wf/u/a/0/../1/outputs":  false,
		"s3://b/ns/wf/u/a/0/./outputs":     false,
		"s3://b/ns/wf/u/a/0//outputs":      false,
		"s3://other/ns/wf/u/a/0/outputs/x": false, // another bucket
		"gs://b/ns/wf/u/a/0/outputs/x":     false,
		"s3://b/ns/wf/u/a/0/outputs/x?v=2": false,
		"s3://b/ns/wf/u/a/00/outputs/x":    false,
	} {
		if got := Within(uri, p); got != want {
			t.Errorf("Within(%q) = %v, want %v", uri, got, want)
		}
	}
	if !Within("s3://b/ns/wf/u/a/0/outputs/x", "s3://b/ns/wf/u/a/0") {
		t.Error("a prefix without its trailing slash is not taken for a directory")
	}
}

func TestRefCheckAndOffloaded(t *testing.T) {
	good := Ref{URI: "s3://b/k", Size: 5, SHA256: digest}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]Ref{
		"no scheme":      {URI: "b/k", SHA256: digest},
		"negative size":  {URI: "s3://b/k", Size: -1, SHA256: digest},
		"short digest":   {URI: "s3://b/k", SHA256: "abc"},
		"not hex":        {URI: "s3://b/k", SHA256: strings.Repeat("z", 64)},
		"dir without /":  {URI: "s3://b/d", SHA256: digest, Files: 2},
		"negative files": {URI: "s3://b/d/", SHA256: digest, Files: -1},
	} {
		if err := r.Check(); err == nil {
			t.Errorf("%s: %+v passed Check", name, r)
		}
	}
	raw, _ := json.Marshal(Offloaded{Ref: good})
	r, ok, err := ParseOffloaded(raw)
	if err != nil || !ok || r != good {
		t.Fatalf("ParseOffloaded(%s) = %+v, %v, %v", raw, r, ok, err)
	}
	for _, inline := range []string{`"text"`, `{"a": 1}`, `{"$ref": 1, "b": 2}`, `[1]`, `null`} {
		if _, ok, err := ParseOffloaded(json.RawMessage(inline)); ok || err != nil {
			t.Errorf("ParseOffloaded(%s) = %v, %v; want an inline value", inline, ok, err)
		}
	}
	if _, ok, err := ParseOffloaded(json.RawMessage(`{"$ref": {"uri": "s3://b/k"}}`)); !ok || err == nil {
		t.Errorf("a malformed reference: ok %v, err %v; want it refused as a reference", ok, err)
	}
}

func TestManifestDigestIsOrderFree(t *testing.T) {
	a := []Entry{{Path: "b/2.csv", Size: 2, SHA256: digest}, {Path: "a.csv", Size: 3, SHA256: digest}}
	b := []Entry{a[1], a[0]}
	ma, err := NewManifest(a)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := NewManifest(b)
	if ma.Digest() != mb.Digest() || ma.Files[0].Path != "a.csv" {
		t.Fatalf("digests %s and %s of the same files in another order; first %q", ma.Digest(), mb.Digest(), ma.Files[0].Path)
	}
	r := ma.Ref("s3://b/p/outputs/d")
	if r.URI != "s3://b/p/outputs/d/" || r.Size != 5 || r.Files != 2 || r.Check() != nil {
		t.Fatalf("Ref = %+v (check %v)", r, r.Check())
	}
	changed := []Entry{a[0], {Path: "a.csv", Size: 3, SHA256: strings.Repeat("0", 64)}}
	mc, _ := NewManifest(changed)
	if mc.Digest() == ma.Digest() {
		t.Fatal("a changed file left the directory's digest as it was")
	}
	back, err := DecodeManifest(ma.Encode())
	if err != nil || back.Digest() != ma.Digest() {
		t.Fatalf("DecodeManifest round trip: %v, %s vs %s", err, back.Digest(), ma.Digest())
	}
	for name, bad := range map[string][]Entry{
		"absolute":  {{Path: "/etc/passwd", SHA256: digest}},
		"climbs":    {{Path: "../x", SHA256: digest}},
		"unclean":   {{Path: "a//b", SHA256: digest}},
		"twice":     {{Path: "a", SHA256: digest}, {Path: "a", SHA256: digest}},
		"manifest":  {{Path: ManifestName, SHA256: digest}},
		"bad hash":  {{Path: "a", SHA256: "x"}},
		"neg size":  {{Path: "a", Size: -1, SHA256: digest}},
		"empty":     {{Path: "", SHA256: digest}},
		"dot alone": {{Path: ".", SHA256: digest}},
	} {
		if _, err := NewManifest(bad); err == nil {
			t.Errorf("%s: %+v accepted", name, bad)
		}
	}
}
