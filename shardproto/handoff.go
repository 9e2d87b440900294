// The handoff rules: how the shard map steps from one version to the
// next. Pure.

package shardproto

// Partition is one entry of the shard map.
type Partition struct {
	// Owner reconciles the partition; "" when nobody does.
	Owner string `json:"owner,omitempty"`
	// Epoch increases with every change of owner.
	Epoch int64 `json:"epoch"`
	// Next, when set, is the member the partition moves to once Owner
	// acknowledges the release of Epoch. Owner must stop reconciling it.
	Next string `json:"next,omitempty"`
	// Asked is the map version that first asked Owner to release (set
	// with Next, kept while the target changes, cleared with Next). An
	// acknowledgement counts only for the request it answers: without it,
	// an ack written for a move that was then cancelled would let a later
	// move skip the owner's release.
	Asked int64 `json:"asked,omitempty"`
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
	// Released maps partition → its owner's release acknowledgement.
	Released map[int]Ack
	// Version is the version of the map being computed (Doc.Version):
	// a new release request is stamped with it.
	Version int64
}

// Ack is a member's acknowledgement that it stopped reconciling a
// partition: the epoch it held and the request (Partition.Asked) it
// answers. Asked 0 is an acknowledgement from a replica older than
// requests; it counts for any request at its epoch.
type Ack struct {
	Epoch int64
	Asked int64
}

// answers reports whether a acknowledges the pending request of s.
func (a Ack) answers(s Partition) bool {
	return a.Epoch == s.Epoch && (a.Asked == s.Asked || a.Asked == 0)
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
		s.Next, s.Asked = "", 0 // stays (or a pending move was cancelled)
		return s
	case s.Owner == "" || !in.Live[s.Owner]:
		// Nobody runs it, or its owner's lease is gone: the new owner may
		// start at once, one epoch up.
		return Partition{Owner: want, Epoch: s.Epoch + 1}
	case s.Next != "" && hasAck(in.Released, p, s):
		// The live owner acknowledged: hand over to the latest target.
		return Partition{Owner: want, Epoch: s.Epoch + 1}
	default:
		// Ask (or keep asking) the live owner to release.
		if s.Next == "" {
			s.Asked = in.Version
		}
		s.Next = want
		return s
	}
}

func hasAck(released map[int]Ack, p int, s Partition) bool {
	a, ok := released[p]
	return ok && a.answers(s)
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
