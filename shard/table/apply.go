package table

import (
	"sort"

	"github.com/rotor-dev/rotor/shardproto"
)

// Apply brings the table in line with doc (nil: no map published yet)
// given whether the replica's lease is valid now, and returns what the
// shell must do.
func (t *Table) Apply(doc *shardproto.Doc, leaseValid bool) Actions {
	var acts Actions
	if doc == nil {
		return acts
	}
	t.applied = true
	t.err = doc.CheckPartitions(t.partitions)
	acts.Err = t.err
	var active, releasing map[int]int64
	if t.err == nil {
		active, releasing = doc.Map.Owned(t.me)
	}
	if !leaseValid {
		active = nil
	}
	for _, p := range sortedKeys(active) {
		if g, ok := t.start(p, active[p]); ok {
			acts.Started = append(acts.Started, g)
		}
	}
	for _, p := range sortedKeys(t.parts) {
		part := t.parts[p]
		if _, ok := active[p]; ok && !part.stopping {
			continue
		}
		if !part.stopping {
			part.stopping = true
			acts.Stopped = append(acts.Stopped, p)
		}
		if part.inflight == 0 {
			delete(t.parts, p)
		}
	}
	for p, a := range t.acked {
		if e, ok := releasing[p]; !ok || e != a.Epoch || doc.Map[p].Asked != a.Asked {
			delete(t.acked, p) // answered, cancelled or superseded
		}
	}
	for _, p := range sortedKeys(releasing) {
		if _, running := t.parts[p]; running {
			continue // still draining
		}
		ack := shardproto.Ack{Epoch: releasing[p], Asked: doc.Map[p].Asked}
		if t.acked[p] == ack {
			continue
		}
		t.acked[p] = ack
		acts.Acks = append(acts.Acks, Release{Partition: p, Ack: ack})
	}
	return acts
}

// start makes p active at epoch unless a newer owner was seen; ok when
// that is a change the shell must act on.
func (t *Table) start(p int, epoch int64) (Grant, bool) {
	if f, ok := t.fenced[p]; ok && f >= epoch {
		return Grant{}, false // someone newer wrote; wait for a map that gives it back higher
	}
	delete(t.fenced, p)
	pt := t.parts[p]
	if pt == nil {
		pt = &part{}
		t.parts[p] = pt
	}
	if !pt.stopping && pt.epoch == epoch {
		return Grant{}, false
	}
	pt.stopping = false
	pt.epoch = epoch
	return Grant{Partition: p, Epoch: epoch}, true
}

// AckFailed reports that writing r failed: the next Apply returns it
// again if the map still asks for it.
func (t *Table) AckFailed(r Release) {
	if t.acked[r.Partition] == r.Ack {
		delete(t.acked, r.Partition)
	}
}

// Acquire starts a round of partition p: it returns the epoch to stamp
// on writes, or ok false when the replica must not reconcile p now.
// Every successful Acquire needs one Done.
func (t *Table) Acquire(p int, leaseValid bool) (epoch int64, ok bool) {
	part := t.parts[p]
	if part == nil || part.stopping || !leaseValid {
		return 0, false
	}
	part.inflight++
	return part.epoch, true
}

// Done ends a round of p. drained is true when p was stopping and that
// was its last round: an Apply now owes its acknowledgement.
func (t *Table) Done(p int) (drained bool) {
	part := t.parts[p]
	if part == nil || part.inflight == 0 {
		return false
	}
	part.inflight--
	return part.stopping && part.inflight == 0
}

// Fence stops p because an object of it carries epoch seen, newer than
// the replica's: p stays stopped until a map gives it at a higher epoch.
// It returns the replica's epoch and whether p was active until now.
func (t *Table) Fence(p int, seen int64) (mine int64, stopped bool) {
	if f, ok := t.fenced[p]; !ok || seen > f {
		t.fenced[p] = seen
	}
	part := t.parts[p]
	if part == nil {
		return 0, false
	}
	if !part.stopping {
		part.stopping = true
		stopped = true
	}
	return part.epoch, stopped
}

// Active reports whether p is reconciled now.
func (t *Table) Active(p int) bool {
	part := t.parts[p]
	return part != nil && !part.stopping
}

// Holds reports whether p is held: active, or stopping with rounds in
// flight. Those rounds still read the partition's pods.
func (t *Table) Holds(p int) bool { return t.parts[p] != nil }

// ActiveCount counts the partitions reconciled now.
func (t *Table) ActiveCount() int {
	n := 0
	for _, part := range t.parts {
		if !part.stopping {
			n++
		}
	}
	return n
}

// Held counts the partitions held, draining ones included.
func (t *Table) Held() int { return len(t.parts) }

// Epoch is p's epoch, 0 when p is not held.
func (t *Table) Epoch(p int) int64 {
	if part := t.parts[p]; part != nil {
		return part.epoch
	}
	return 0
}

// Err says why the last map cannot be followed, or nil.
func (t *Table) Err() error { return t.err }

// Applied reports whether a map has been applied.
func (t *Table) Applied() bool { return t.applied }

// PartitionOf is the partition of a namespace in this installation.
func (t *Table) PartitionOf(namespace string) int {
	return shardproto.PartitionOf(namespace, t.partitions)
}

func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
