package shardproto

import (
	"fmt"
	"math/rand"
	"testing"
)

func live(ms ...string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		out[m] = true
	}
	return out
}

// TestScenarios replays exact orders of events on one partition.
func TestScenarios(t *testing.T) {
	type ev struct {
		desired  string
		live     []string
		released int64 // -1: no ack
		asked    int64 // the request the ack answers
		want     Partition
	}
	for _, tc := range []struct {
		name   string
		start  Partition
		events []ev
	}{
		{"first assignment", Partition{}, []ev{
			{"a", []string{"a"}, -1, 0, Partition{Owner: "a", Epoch: 1}},
			{"a", []string{"a"}, -1, 0, Partition{Owner: "a", Epoch: 1}},
		}},
		{"graceful move waits for the ack", Partition{Owner: "a", Epoch: 3}, []ev{
			{"b", []string{"a", "b"}, -1, 0, Partition{Owner: "a", Epoch: 3, Next: "b", Asked: 1}},
			{"b", []string{"a", "b"}, 2, 1, Partition{Owner: "a", Epoch: 3, Next: "b", Asked: 1}}, // stale ack
			{"b", []string{"a", "b"}, 3, 1, Partition{Owner: "b", Epoch: 4}},
		}},
		{"an ack of a cancelled request does not count", Partition{Owner: "a", Epoch: 3}, []ev{
			{"b", []string{"a", "b"}, -1, 0, Partition{Owner: "a", Epoch: 3, Next: "b", Asked: 1}},
			{"a", []string{"a"}, 3, 1, Partition{Owner: "a", Epoch: 3}}, // cancelled; a acked late
			{"c", []string{"a", "c"}, 3, 1, Partition{Owner: "a", Epoch: 3, Next: "c", Asked: 3}},
			{"c", []string{"a", "c"}, 3, 1, Partition{Owner: "a", Epoch: 3, Next: "c", Asked: 3}},
			{"c", []string{"a", "c"}, 3, 3, Partition{Owner: "c", Epoch: 4}},
		}},
		{"an ack from an older replica counts at its epoch", Partition{Owner: "a", Epoch: 3}, []ev{
			{"b", []string{"a", "b"}, -1, 0, Partition{Owner: "a", Epoch: 3, Next: "b", Asked: 1}},
			{"b", []string{"a", "b"}, 3, 0, Partition{Owner: "b", Epoch: 4}},
		}},
		{"dead owner moves at once", Partition{Owner: "a", Epoch: 3}, []ev{
			{"b", []string{"b"}, -1, 0, Partition{Owner: "b", Epoch: 4}},
		}},
		{"owner dies while releasing", Partition{Owner: "a", Epoch: 3}, []ev{
			{"b", []string{"a", "b"}, -1, 0, Partition{Owner: "a", Epoch: 3, Next: "b", Asked: 1}},
			{"b", []string{"b"}, -1, 0, Partition{Owner: "b", Epoch: 4}},
		}},
		{"move cancelled before the ack", Partition{Owner: "a", Epoch: 3}, []ev{
			{"b", []string{"a", "b"}, -1, 0, Partition{Owner: "a", Epoch: 3, Next: "b", Asked: 1}},
			{"a", []string{"a"}, -1, 0, Partition{Owner: "a", Epoch: 3}},
		}},
		{"target changes while releasing", Partition{Owner: "a", Epoch: 3}, []ev{
			{"b", []string{"a", "b", "c"}, -1, 0, Partition{Owner: "a", Epoch: 3, Next: "b", Asked: 1}},
			{"c", []string{"a", "c"}, -1, 0, Partition{Owner: "a", Epoch: 3, Next: "c", Asked: 1}}, // the same request
			{"c", []string{"a", "c"}, 3, 1, Partition{Owner: "c", Epoch: 4}},
		}},
		{"everyone gone", Partition{Owner: "a", Epoch: 3}, []ev{
			{"", nil, -1, 0, Partition{Epoch: 4}},
			{"b", []string{"b"}, -1, 0, Partition{Owner: "b", Epoch: 5}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Map{tc.start}
			for i, e := range tc.events {
				rel := map[int]Ack{}
				if e.released >= 0 {
					rel[0] = Ack{Epoch: e.released, Asked: e.asked}
				}
				m = Step(m, Inputs{Desired: []string{e.desired}, Live: live(e.live...), Released: rel, Version: int64(i + 1)})
				if m[0] != e.want {
					t.Fatalf("event %d: %+v, want %+v", i, m[0], e.want)
				}
			}
		})
	}
}

// TestRandomHistories drives random memberships, desires and acks, and
// checks the invariants after every step: epochs never decrease and grow
// exactly when the owner changes; a live owner is replaced only after
// acknowledging its current epoch.
func TestRandomHistories(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	members := []string{"a", "b", "c", "d"}
	for iter := 0; iter < 300; iter++ {
		const P = 8
		m := make(Map, P)
		for step := 0; step < 50; step++ {
			lv := map[string]bool{}
			var alive []string
			for _, x := range members {
				if rng.Intn(4) != 0 {
					lv[x] = true
					alive = append(alive, x)
				}
			}
			desired := make([]string, P)
			rel := map[int]Ack{}
			for p := range desired {
				if len(alive) > 0 {
					desired[p] = alive[rng.Intn(len(alive))]
				}
				if m[p].Releasing() && rng.Intn(2) == 0 {
					// sometimes stale: an older epoch, or an older request
					asked := m[p].Asked
					if asked > 1 && rng.Intn(2) == 0 {
						asked--
					}
					rel[p] = Ack{Epoch: m[p].Epoch - int64(rng.Intn(2)), Asked: asked}
				}
			}
			next := Step(m, Inputs{Desired: desired, Live: lv, Released: rel, Version: int64(step + 1)})
			for p := range next {
				before, after := m[p], next[p]
				if after.Epoch < before.Epoch {
					t.Fatalf("iteration %d step %d p%d: epoch went down %d → %d", iter, step, p, before.Epoch, after.Epoch)
				}
				changed := after.Owner != before.Owner
				if changed && after.Epoch != before.Epoch+1 {
					t.Fatalf("p%d: owner %q → %q with epoch %d → %d", p, before.Owner, after.Owner, before.Epoch, after.Epoch)
				}
				if !changed && after.Epoch != before.Epoch {
					t.Fatalf("p%d: epoch changed %d → %d without a new owner", p, before.Epoch, after.Epoch)
				}
				if changed && before.Owner != "" && lv[before.Owner] && rel[p] != (Ack{Epoch: before.Epoch, Asked: before.Asked}) {
					t.Fatalf("p%d: live owner %s replaced without acknowledging epoch %d request %d (ack %+v)", p, before.Owner, before.Epoch, before.Asked, rel[p])
				}
				if after.Releasing() && (after.Asked == 0 || (before.Releasing() && after.Asked != before.Asked && !changed)) {
					t.Fatalf("p%d: release request %d → %d", p, before.Asked, after.Asked)
				}
				if after.Owner != "" && !lv[after.Owner] && changed {
					t.Fatalf("p%d: handed to dead member %s", p, after.Owner)
				}
			}
			m = next
		}
	}
}

func TestOwned(t *testing.T) {
	m := Map{{Owner: "a", Epoch: 1}, {Owner: "a", Epoch: 2, Next: "b"}, {Owner: "b", Epoch: 7}}
	active, releasing := m.Owned("a")
	if fmt.Sprint(active) != "map[0:1]" || fmt.Sprint(releasing) != "map[1:2]" || m.Moving() != 1 {
		t.Fatalf("active %v releasing %v moving %d", active, releasing, m.Moving())
	}
}
