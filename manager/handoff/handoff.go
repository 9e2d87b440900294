// Package handoff is the pure core of partition ownership: given the
// current shard map, the live members, the ring's desired assignment and
// the release acknowledgements, it computes the next shard map.
//
// Invariants (checked by the tests, relied on by the replicas):
//   - A partition has at most one owner, and only the owner reconciles it.
//   - The epoch of a partition grows by one every time its owner changes,
//     and never otherwise; writers stamp it on every status write, so a
//     higher epoch on an object proves a newer owner.
//   - A partition moves away from a live owner only after that owner
//     acknowledged the release at the current epoch; from a dead owner
//     (lease gone) it moves at once.
package handoff

// Partition is one entry of the shard map.
type Partition struct {
	// Owner reconciles the partition; "" when nobody does.
	Owner string `json:"owner,omitempty"`
	// Epoch increases with every change of owner.
	Epoch int64 `json:"epoch"`
	// Next, when set, is the member the partition moves to once Owner
	// acknowledges the release of Epoch. Owner must stop reconciling it.
	Next string `json:"next,omitempty"`
}

// Releasing reports whether the owner has been asked to let go.
func (p Partition) Releasing() bool { return p.Next != "" }

// Map is the shard map: partition index → state.
type Map []Partition

// Inputs is what the leader knows when it steps the map.
type Inputs struct {
	// Desired is the ring's assignment over live members.
	Desired []string
	// Live holds the members whose lease is alive.
	Live map[string]bool
	// Released maps partition → the epoch its owner acknowledged releasing.
	Released map[int]int64
}

// Step computes the next map. It never mutates cur.
func Step(cur Map, in Inputs) Map {
	next := make(Map, len(in.Desired))
	copy(next, cur)
	for p := range next {
		next[p] = stepPartition(next[p], in.Desired[p], in, p)
	}
	return next
}

func stepPartition(s Partition, want string, in Inputs, p int) Partition {
	switch {
	case want == "" && (s.Owner == "" || !in.Live[s.Owner]):
		return Partition{Epoch: s.Epoch + bump(s.Owner != "")} // no members at all
	case s.Owner == want:
		s.Next = "" // stays (or a pending move was cancelled)
		return s
	case s.Owner == "" || !in.Live[s.Owner]:
		// Nobody runs it, or its owner's lease is gone: the new owner may
		// start at once, one epoch up.
		return Partition{Owner: want, Epoch: s.Epoch + 1}
	case s.Next != "" && in.Released[p] == s.Epoch:
		// The live owner acknowledged: hand over to the latest target.
		return Partition{Owner: want, Epoch: s.Epoch + 1}
	default:
		// Ask (or keep asking) the live owner to release.
		s.Next = want
		return s
	}
}

func bump(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Owned lists, for member m, the partitions it may reconcile now (owned,
// not releasing) with their epochs, and those it must release.
func (m Map) Owned(member string) (active map[int]int64, releasing map[int]int64) {
	active, releasing = map[int]int64{}, map[int]int64{}
	for p, s := range m {
		if s.Owner != member {
			continue
		}
		if s.Releasing() {
			releasing[p] = s.Epoch
		} else {
			active[p] = s.Epoch
		}
	}
	return active, releasing
}

// Moving counts partitions waiting for a release.
func (m Map) Moving() int {
	n := 0
	for _, s := range m {
		if s.Releasing() {
			n++
		}
	}
	return n
}
