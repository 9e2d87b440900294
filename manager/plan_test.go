package manager

import (
	"testing"

	"github.com/rotor-dev/rotor/shardproto"
)

func infos(names ...string) map[string]shardproto.MemberInfo {
	out := map[string]shardproto.MemberInfo{}
	for _, n := range names {
		out[n] = shardproto.MemberInfo{Name: n, Weight: 1}
	}
	return out
}

func TestPlanLifecycle(t *testing.T) {
	cfg := shardproto.RingConfig{Partitions: 64}
	m := make(shardproto.Map, 64)
	var err error
	// Three replicas join: everything assigned at epoch 1.
	if m, err = Plan(m, infos("a", "b", "c"), nil, cfg, 1); err != nil {
		t.Fatal(err)
	}
	for p, s := range m {
		if s.Owner == "" || s.Epoch != 1 || s.Releasing() {
			t.Fatalf("p%d = %+v after the first plan", p, s)
		}
	}
	// A fourth joins: some partitions are asked to move, none moves yet.
	next, _ := Plan(m, infos("a", "b", "c", "d"), nil, cfg, 2)
	if next.Moving() == 0 {
		t.Fatal("no partition moves to the new member")
	}
	for p := range next {
		if next[p].Owner != m[p].Owner {
			t.Fatalf("p%d moved before its owner released it", p)
		}
	}
	// Owners acknowledge: the moves happen, one epoch up, to d.
	acks := map[string]map[int]shardproto.Ack{}
	for p, s := range next {
		if s.Releasing() {
			if acks[s.Owner] == nil {
				acks[s.Owner] = map[int]shardproto.Ack{}
			}
			acks[s.Owner][p] = shardproto.Ack{Epoch: s.Epoch, Asked: s.Asked}
		}
	}
	moved, _ := Plan(next, infos("a", "b", "c", "d"), acks, cfg, 3)
	for p := range moved {
		if next[p].Releasing() && (moved[p].Owner != "d" || moved[p].Epoch != 2) {
			t.Fatalf("p%d = %+v after the ack, want d at epoch 2", p, moved[p])
		}
	}
	// d dies: its partitions go elsewhere at once.
	after, _ := Plan(moved, infos("a", "b", "c"), nil, cfg, 4)
	for p := range after {
		if moved[p].Owner == "d" && (after[p].Owner == "d" || after[p].Epoch != 3) {
			t.Fatalf("p%d = %+v after d died", p, after[p])
		}
	}
	// Everyone drains: nothing is dropped.
	drain := infos("a", "b", "c")
	for k, v := range drain {
		v.Draining = true
		drain[k] = v
	}
	kept, _ := Plan(after, drain, nil, cfg, 5)
	for p := range kept {
		if kept[p].Owner != after[p].Owner {
			t.Fatalf("p%d moved with every member draining", p)
		}
	}
}
