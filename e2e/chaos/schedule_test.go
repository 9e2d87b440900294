package chaos

import (
	"reflect"
	"testing"
	"time"
)

func TestScheduleIsDeterministic(t *testing.T) {
	c := DefaultScheduleConfig(3 * time.Minute)
	a, b := Schedule(42, c), Schedule(42, c)
	if len(a) == 0 {
		t.Fatal("seed 42 drew no fault over 3 minutes")
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 42 gave two schedules:\n%v\n%v", a, b)
	}
	if reflect.DeepEqual(a, Schedule(43, c)) {
		t.Fatal("seeds 42 and 43 gave the same schedule")
	}
}

func TestScheduleRespectsItsConstraints(t *testing.T) {
	c := DefaultScheduleConfig(3 * time.Minute)
	seen := map[Kind]int{}
	overlaps := 0
	for seed := int64(1); seed <= 200; seed++ {
		fs := Schedule(seed, c)
		if len(fs) < 5 {
			t.Fatalf("seed %d: only %d faults in 3 minutes", seed, len(fs))
		}
		for class, n := range ClassActive(fs) {
			if n > 1 {
				t.Fatalf("seed %d: %d faults of class %s at once:\n%v", seed, n, class, fs)
			}
		}
		for i, f := range fs {
			seen[f.Kind]++
			if f.At < c.Warmup || f.At+f.Down+c.Settle > c.Duration {
				t.Fatalf("seed %d: %s outside [warmup %s, duration %s - settle]", seed, f, c.Warmup, c.Duration)
			}
			if i > 0 && f.At < fs[i-1].At {
				t.Fatalf("seed %d: not in time order: %s after %s", seed, f, fs[i-1])
			}
			switch f.Kind {
			case ReplicaStop, ReplicaEtcdCut:
				if f.Down <= c.LeaseTTL {
					t.Fatalf("seed %d: %s: a freeze or cut must outlast the lease (%s)", seed, f, c.LeaseTTL)
				}
				fallthrough
			case ReplicaKill:
				if f.Target < 0 || f.Target >= c.Replicas {
					t.Fatalf("seed %d: %s: no such replica", seed, f)
				}
			case TargetAPIServer:
				if f.Target < 0 || f.Target >= c.Targets {
					t.Fatalf("seed %d: %s: no such target", seed, f)
				}
			}
		}
		overlaps += Overlaps(fs)
	}
	for _, k := range Kinds {
		if seen[k] == 0 {
			t.Errorf("no seed of 200 drew a %s fault", k)
		}
	}
	if overlaps == 0 {
		t.Error("no fault of 200 schedules overlapped another class's outage")
	}
}

func TestScheduleOnlyDrawsEnabledKinds(t *testing.T) {
	c := DefaultScheduleConfig(3 * time.Minute)
	c.Kinds = []Kind{ManagerKill}
	fs := Schedule(7, c)
	if len(fs) == 0 {
		t.Fatal("no fault drawn")
	}
	for _, f := range fs {
		if f.Kind != ManagerKill {
			t.Fatalf("drew %s with only %s enabled", f, ManagerKill)
		}
	}
}

func TestClassActiveSeesAnOverlap(t *testing.T) {
	fs := []Fault{{At: 0, Kind: ReplicaKill, Down: 5 * time.Second}, {At: time.Second, Kind: ReplicaStop, Down: time.Second}}
	if n := ClassActive(fs)["replica"]; n != 2 {
		t.Fatalf("two replica faults at once counted as %d", n)
	}
}
