package shardproto

import (
	"fmt"
	"math/rand"
	"testing"
)

func names(rng *rand.Rand, n int) []RingMember {
	out := make([]RingMember, n)
	for i := range out {
		out[i] = RingMember{Name: fmt.Sprintf("propeller-%08x", rng.Uint32()), Weight: 1}
	}
	return out
}

// weighted returns n random members of weights 1 to 3 and their total.
func weighted(rng *rand.Rand, n int) ([]RingMember, int) {
	ms := names(rng, n)
	total := 0
	for i := range ms {
		ms[i].Weight = 1 + rng.Intn(3)
		total += ms[i].Weight
	}
	return ms, total
}

// checkBound fails unless every partition has an owner and no member
// holds more than its capacity.
func checkBound(t *testing.T, iter int, cfg RingConfig, ms []RingMember, total int, a Assignment) {
	t.Helper()
	loads := a.Loads()
	for _, m := range ms {
		if c := Capacity(cfg, m.Weight, total); loads[m.Name] > c {
			t.Fatalf("iteration %d: %s (weight %d) holds %d > capacity %d", iter, m.Name, m.Weight, loads[m.Name], c)
		}
	}
	if loads[""] != 0 {
		t.Fatalf("iteration %d: %d partitions without owner", iter, loads[""])
	}
}

func mustAssign(t testing.TB, cfg RingConfig, ms []RingMember) Assignment {
	t.Helper()
	a, err := Assign(cfg, ms)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestLoadBound: no member ever holds more than its capacity, and every
// partition has an owner, for random memberships and weights.
func TestLoadBound(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 200; iter++ {
		cfg := RingConfig{Partitions: 1 + rng.Intn(512)}
		ms, total := weighted(rng, 1+rng.Intn(12))
		checkBound(t, iter, cfg, ms, total, mustAssign(t, cfg, ms))
	}
}

// TestDeterministic: the same membership in any order gives the same
// assignment.
func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for iter := 0; iter < 50; iter++ {
		ms := names(rng, 2+rng.Intn(8))
		a := mustAssign(t, RingConfig{}, ms)
		rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		if b := mustAssign(t, RingConfig{}, ms); Moved(a, b) != 0 {
			t.Fatalf("iteration %d: reordering members moved %d partitions", iter, Moved(a, b))
		}
	}
}

// TestMinimalMovement: going from N to N+1 members moves close to the
// minimum P/(N+1); going from N+1 back to N moves about the removed
// member's load. Averaged over random names, the excess over the minimum
// must stay within a few percent of P.
func TestMinimalMovement(t *testing.T) {
	const P = 256
	rng := rand.New(rand.NewSource(3))
	for n := 1; n <= 10; n++ {
		var movedAdd, movedRemove, minAdd, minRemove float64
		const trials = 20
		for trial := 0; trial < trials; trial++ {
			ms := names(rng, n+1)
			before := mustAssign(t, RingConfig{Partitions: P}, ms[:n])
			after := mustAssign(t, RingConfig{Partitions: P}, ms)
			movedAdd += float64(Moved(before, after))
			minAdd += float64(after.Loads()[ms[n].Name])
			// Remove a random member from the N+1.
			k := rng.Intn(n + 1)
			rest := append(append([]RingMember{}, ms[:k]...), ms[k+1:]...)
			shrunk := mustAssign(t, RingConfig{Partitions: P}, rest)
			movedRemove += float64(Moved(after, shrunk))
			minRemove += float64(after.Loads()[ms[k].Name])
		}
		excessAdd := (movedAdd - minAdd) / trials / P
		excessRemove := (movedRemove - minRemove) / trials / P
		t.Logf("N=%2d → %2d: moved %.1f (minimum %.1f, ideal P/(N+1) = %.1f); %2d → %2d: moved %.1f (minimum %.1f)",
			n, n+1, movedAdd/trials, minAdd/trials, float64(P)/float64(n+1), n+1, n, movedRemove/trials, minRemove/trials)
		if excessAdd > 0.05 || excessRemove > 0.05 {
			t.Errorf("N=%d: excess movement %.1f%% (add) / %.1f%% (remove) of P, want ≤ 5%%", n, 100*excessAdd, 100*excessRemove)
		}
	}
}

func TestWeights(t *testing.T) {
	a := mustAssign(t, RingConfig{Partitions: 300}, []RingMember{{Name: "big", Weight: 2}, {Name: "small", Weight: 1}})
	l := a.Loads()
	if l["big"] < 170 || l["small"] < 80 {
		t.Fatalf("loads %v, want about 200/100 for weights 2/1", l)
	}
}

func TestInjectedHashForcesPositions(t *testing.T) {
	// With every point and partition hashing to 0, ties break by member
	// name: a fills up to its capacity ceil(1.01 × 4 / 2) = 3, then b.
	cfg := RingConfig{Partitions: 4, LoadFactor: 1.01, PointsPerWeight: 1, Hash: func([]byte) uint64 { return 0 }}
	a := mustAssign(t, cfg, []RingMember{{Name: "b"}, {Name: "a"}})
	if fmt.Sprint(a) != "[a a a b]" {
		t.Fatalf("assignment %v, want [a a a b]", a)
	}
}

func TestDuplicateMember(t *testing.T) {
	if _, err := Assign(RingConfig{}, []RingMember{{Name: "a"}, {Name: "a"}}); err == nil {
		t.Fatal("duplicate member accepted")
	}
}

func TestPartitionOf(t *testing.T) {
	counts := make([]int, 16)
	for i := 0; i < 16000; i++ {
		counts[PartitionOf(fmt.Sprintf("team-%d", i), 16)]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("partition %d got %d of 16000 namespaces, want about 1000", p, c)
		}
	}
}

func BenchmarkAssign(b *testing.B) {
	ms := names(rand.New(rand.NewSource(4)), 16)
	for b.Loop() {
		_, _ = Assign(RingConfig{Partitions: 256}, ms)
	}
}

// TestAssignFromBoundAndFixedPoint: from any previous assignment (random
// owners, some of them gone), every partition gets a live owner, no
// member exceeds its capacity, and planning again settles within one more
// step (a member stripped of everything by newcomers counts as a newcomer
// the next time); from the assignment of another membership — what the
// manager plans from — the result is a fixed point at once.
func TestAssignFromBoundAndFixedPoint(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	for iter := 0; iter < 200; iter++ {
		cfg := RingConfig{Partitions: 1 + rng.Intn(1024)}
		ms, total := weighted(rng, 1+rng.Intn(40))
		prev := make(Assignment, cfg.Partitions)
		for p := range prev {
			if k := rng.Intn(len(ms) + 2); k < len(ms) {
				prev[p] = ms[k].Name
			} else if k == len(ms) {
				prev[p] = "gone"
			}
		}
		a, err := AssignFrom(cfg, ms, prev)
		if err != nil {
			t.Fatal(err)
		}
		checkBound(t, iter, cfg, ms, total, a)
		if n := a.Loads()["gone"]; n != 0 {
			t.Fatalf("iteration %d: %d partitions with a departed owner", iter, n)
		}
		again, _ := AssignFrom(cfg, ms, a)
		third, _ := AssignFrom(cfg, ms, again)
		if Moved(again, third) != 0 {
			t.Fatalf("iteration %d: planning a third time moved %d partitions", iter, Moved(again, third))
		}
		// From a real plan of a membership with one member more or less.
		other := ms
		if len(ms) > 1 && rng.Intn(2) == 0 {
			other = ms[1:]
		} else {
			other = append(append([]RingMember(nil), ms...), names(rng, 1)...)
		}
		base := mustAssign(t, cfg, other)
		next, _ := AssignFrom(cfg, ms, base)
		if again, _ := AssignFrom(cfg, ms, next); Moved(next, again) != 0 {
			t.Fatalf("iteration %d: planning again after a membership change moved %d partitions", iter, Moved(next, again))
		}
	}
}

// TestAssignFromMovesTheMinimum: at hundreds of members, where Assign's
// greedy walk moves a third more than needed, a join moves exactly the
// newcomer's partitions and a leave the leaver's, averaged within 1 %,
// and the newcomer gets close to its fair share.
func TestAssignFromMovesTheMinimum(t *testing.T) {
	for _, tc := range []struct{ members, partitions int }{{10, 256}, {200, 1024}, {1000, 4096}} {
		t.Run(fmt.Sprintf("%d members %d partitions", tc.members, tc.partitions), func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			cfg := RingConfig{Partitions: tc.partitions}
			ms := names(rng, tc.members)
			cur := mustAssign(t, cfg, ms)
			var moved, minimum, share float64
			const trials = 10
			for trial := 0; trial < trials; trial++ {
				joiner := names(rng, 1)[0]
				ms = append(ms, joiner)
				next, err := AssignFrom(cfg, ms, cur)
				if err != nil {
					t.Fatal(err)
				}
				moved += float64(Moved(cur, next))
				minimum += float64(next.Loads()[joiner.Name])
				share += float64(next.Loads()[joiner.Name]) / (float64(tc.partitions) / float64(len(ms)))
				cur = next
				k := rng.Intn(len(ms))
				leaver := ms[k].Name
				ms = append(ms[:k:k], ms[k+1:]...)
				next, _ = AssignFrom(cfg, ms, cur)
				moved += float64(Moved(cur, next))
				minimum += float64(cur.Loads()[leaver])
				cur = next
			}
			t.Logf("%d joins and %d leaves: moved %.0f, minimum %.0f (×%.3f); newcomer's share of fair %.2f", trials, trials, moved, minimum, moved/minimum, share/trials)
			if minimum == 0 || moved > minimum*1.01 {
				t.Errorf("moved %.0f partitions, minimum %.0f: more than 1 %% above", moved, minimum)
			}
			if share/trials < 0.6 {
				t.Errorf("newcomers got %.2f of their fair share on average, want at least 0.6", share/trials)
			}
		})
	}
}
