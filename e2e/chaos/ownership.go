package chaos

import (
	"fmt"
	"sort"
	"time"
)

// MapSeen is the shard map as the soak saw it from At on: the owner of
// each partition.
type MapSeen struct {
	At     time.Time
	Owners []string
}

// WriteSeen is one successful write of a Workflow by a replica, from the
// control apiserver's audit log.
type WriteSeen struct {
	Replica, Namespace, Name, Resource string
	// At is when the apiserver completed it.
	At time.Time
}

// WritesOutsideOwnership lists the writes a replica made at a time the
// shard map did not give it the namespace's partition: a replica writes
// only partitions it owns, stops before it acknowledges a release, and
// stops when its lease deadline passes, before the map can move the
// partition on. maps must be in time order. A write counts as owned if
// the map gave the replica the partition at any moment within slack of
// it (the soak sees the map through a watch, a little late). Writes
// before the first map seen are listed too: the soak watches the map
// before it submits anything.
func WritesOutsideOwnership(writes []WriteSeen, maps []MapSeen, partitionOf func(namespace string) int, slack time.Duration) []string {
	var out []string
	for _, w := range writes {
		p := partitionOf(w.Namespace)
		from, to := w.At.Add(-slack), w.At.Add(slack)
		owned := false
		var owners []string
		for i, m := range maps {
			end := time.Time{} // the last map holds for ever
			if i+1 < len(maps) {
				end = maps[i+1].At
			}
			if m.At.After(to) || (!end.IsZero() && end.Before(from)) {
				continue
			}
			if p < len(m.Owners) {
				owners = append(owners, m.Owners[p])
				if m.Owners[p] == w.Replica {
					owned = true
					break
				}
			}
		}
		if !owned {
			out = append(out, fmt.Sprintf("%s wrote %s %s/%s at %s; partition %d's owners within %s: %v",
				w.Replica, w.Resource, w.Namespace, w.Name, w.At.Format("15:04:05.000"), p, slack, owners))
		}
	}
	sort.Strings(out)
	return out
}
