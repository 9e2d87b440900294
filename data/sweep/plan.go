// Package sweep is the raw-data retention sweeper: it deletes the objects
// of workflows that no longer exist, and of finished workflows older than
// their namespace's retention, except every object a live task-cache
// entry or a workflow that stays references (a cache hit, or a recovered
// run, points into another workflow's prefix).
//
// Plan is the pure decision; Sweeper is the shell that lists the store,
// the Workflows and the cache, and deletes. It runs in the leading
// manager, or in a lone unsharded propeller, like the cluster prober.
package sweep

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/rotor-dev/rotor/data/ref"
)

// Object is one object in the store.
type Object struct {
	URI      string
	Size     int64
	Modified time.Time
}

// Workflow is one Workflow that exists.
type Workflow struct {
	Namespace, Name, UID string
	// Finished is when it ended; nil while it runs.
	Finished *time.Time
	// Refs are the references its spec's inputs and its status (every
	// node's outputs and its own) hold, as found by Refs.
	Refs []ref.Ref
}

// Input is what one sweep decides on.
type Input struct {
	// Root is the store's root URI: objects lie at
	// <root>/<namespace>/<workflow>/<uid>/...
	Root string
	Now  time.Time
	// Objects were listed before Workflows: an object's workflow was
	// created before the object, so a workflow missing from the later
	// list was deleted, not too new to be seen.
	Objects   []Object
	Workflows []Workflow
	// Retention is a namespace's: how long after a workflow finished its
	// data is kept (0: as long as the workflow exists).
	Retention func(namespace string) time.Duration
	// CacheRefs are the references of live task-cache entries' outputs.
	CacheRefs []ref.Ref
	// Grace spares objects modified this recently, whatever else holds.
	Grace time.Duration
}

// UploadGrace spares what rotor submit --input name=@path uploaded
// (<root>/<namespace>/_uploads/<id>/) for this long whatever the Grace:
// the upload comes before the Workflow that will reference it, and a
// submission may be retried by hand. After it, an upload stays while a
// Workflow's spec references it.
const UploadGrace = time.Hour

// Result is a sweep's decision.
type Result struct {
	// Delete lists the objects to delete, sorted.
	Delete []string
	// Bytes is their size.
	Bytes int64
	// Gone are the workflow prefixes with objects to delete, and why:
	// "deleted" or "expired".
	Gone map[string]string
	// Kept counts objects of such workflows spared because a cache entry
	// or a workflow that stays references them, or they are too recent.
	Protected, Recent int
}

type wfKey struct{ ns, name, uid string }

// Plan decides which objects go.
func Plan(in Input) Result {
	root := strings.TrimRight(in.Root, "/") + "/"
	live := make(map[wfKey]Workflow, len(in.Workflows))
	expired := map[wfKey]bool{}
	for _, w := range in.Workflows {
		k := wfKey{w.Namespace, w.Name, w.UID}
		live[k] = w
		if w.Finished != nil && in.Retention != nil {
			if r := in.Retention(w.Namespace); r > 0 && in.Now.Sub(*w.Finished) > r {
				expired[k] = true
			}
		}
	}
	// What stays referenced: live cache entries, and workflows whose own
	// data stays (an expiring one protects nothing: its refs go with it).
	var keep []ref.Ref
	keep = append(keep, in.CacheRefs...)
	for k, w := range live {
		if !expired[k] {
			keep = append(keep, w.Refs...)
		}
	}
	exact := map[string]bool{}
	var dirs []string
	for _, r := range keep {
		if r.IsDir() {
			dirs = append(dirs, r.URI)
		} else {
			exact[r.URI] = true
		}
	}
	protected := func(uri string) bool {
		if exact[uri] {
			return true
		}
		for _, d := range dirs {
			if ref.Within(uri, d) {
				return true
			}
		}
		return false
	}
	res := Result{Gone: map[string]string{}}
	for _, o := range in.Objects {
		rest, ok := strings.CutPrefix(o.URI, root)
		if !ok {
			continue // not under the root: not Rotor's to judge
		}
		parts := strings.SplitN(rest, "/", 4)
		if len(parts) < 4 {
			continue // not an execution's object (<ns>/<wf>/<uid>/...)
		}
		k := wfKey{parts[0], parts[1], parts[2]}
		why := ""
		switch {
		case expired[k]:
			why = "expired"
		case live[k].UID == "":
			why = "deleted"
		default:
			continue
		}
		grace := in.Grace
		if k.name == ref.Uploads {
			grace = max(grace, UploadGrace)
		}
		switch {
		case grace > 0 && in.Now.Sub(o.Modified) < grace:
			res.Recent++
		case protected(o.URI):
			res.Protected++
		default:
			res.Delete = append(res.Delete, o.URI)
			res.Bytes += o.Size
			res.Gone[root+strings.Join(parts[:3], "/")+"/"] = why
		}
	}
	sort.Strings(res.Delete)
	return res
}

// Refs finds every reference in a JSON value: a file or directory
// reference ({uri, size, sha256}) or an offloaded value ({"$ref": ...}),
// at any depth (a map's gathered list of files holds one per item). An
// offloaded value's own contents are not read: references inside it are
// not found (see docs/design.md).
func Refs(raw json.RawMessage) []ref.Ref {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []ref.Ref
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				walk(e)
			}
		case map[string]any:
			if inner, ok := t["$ref"]; ok && len(t) == 1 {
				walk(inner)
				return
			}
			uri, _ := t["uri"].(string)
			sum, _ := t["sha256"].(string)
			if uri != "" && sum != "" {
				b, _ := json.Marshal(t)
				var r ref.Ref
				if json.Unmarshal(b, &r) == nil && r.Check() == nil {
					out = append(out, r)
					return
				}
			}
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}
