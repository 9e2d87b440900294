package manager

import (
	"github.com/rotor-dev/rotor/shardproto"
)

// Plan computes version `version` of the shard map from the live members
// (with their weights and drain requests) and the release
// acknowledgements, keyed by member then partition. Acknowledgements count
// only from the partition's current owner. Draining members keep what
// they own until it has somewhere to go, and get nothing new. Pure.
func Plan(cur shardproto.Map, members map[string]shardproto.MemberInfo, acks map[string]map[int]shardproto.Ack, cfg shardproto.RingConfig, version int64) (shardproto.Map, error) {
	live := map[string]bool{}
	var ms []shardproto.RingMember
	for name, info := range members {
		live[name] = true
		if !info.Draining {
			ms = append(ms, shardproto.RingMember{Name: name, Weight: info.Weight})
		}
	}
	// Plan from where partitions are (or are going), so a join or leave
	// moves only what it must (shardproto.AssignFrom).
	desired, err := shardproto.AssignFrom(cfg, ms, Targets(cur))
	if err != nil {
		return nil, err
	}
	released := map[int]shardproto.Ack{}
	for p, s := range cur {
		if e, ok := acks[s.Owner][p]; ok {
			released[p] = e
		}
	}
	next := shardproto.Step(cur, shardproto.Inputs{Desired: desired, Live: live, Released: released, Version: version})
	for p := range next {
		if next[p].Owner == "" && live[cur[p].Owner] {
			// Only draining members are left: keep the partition where it is
			// rather than drop it.
			next[p] = cur[p]
			next[p].Next, next[p].Asked = "", 0
		}
	}
	return next, nil
}

// Targets is where each partition is or is going: its owner, or the
// member a pending release hands it to.
func Targets(m shardproto.Map) shardproto.Assignment {
	out := make(shardproto.Assignment, len(m))
	for p, s := range m {
		out[p] = s.Owner
		if s.Releasing() {
			out[p] = s.Next
		}
	}
	return out
}
