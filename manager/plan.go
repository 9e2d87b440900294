package manager

import (
	"github.com/rotor-dev/rotor/manager/handoff"
	"github.com/rotor-dev/rotor/manager/ring"
	"github.com/rotor-dev/rotor/shard/member"
)

// Plan computes the next shard map from the live members (with their
// weights and drain requests) and the release acknowledgements, keyed by
// member then partition. Acknowledgements count only from the partition's
// current owner. Draining members keep what they own until it has
// somewhere to go, and get nothing new. Pure.
func Plan(cur handoff.Map, members map[string]member.Info, acks map[string]map[int]int64, cfg ring.Config) (handoff.Map, error) {
	live := map[string]bool{}
	var ms []ring.Member
	for name, info := range members {
		live[name] = true
		if !info.Draining {
			ms = append(ms, ring.Member{Name: name, Weight: info.Weight})
		}
	}
	desired, err := ring.Assign(cfg, ms)
	if err != nil {
		return nil, err
	}
	released := map[int]int64{}
	for p, s := range cur {
		if e, ok := acks[s.Owner][p]; ok {
			released[p] = e
		}
	}
	next := handoff.Step(cur, handoff.Inputs{Desired: desired, Live: live, Released: released})
	for p := range next {
		if next[p].Owner == "" && live[cur[p].Owner] {
			// Only draining members are left: keep the partition where it is
			// rather than drop it.
			next[p] = cur[p]
			next[p].Next = ""
		}
	}
	return next, nil
}
