package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults the soak injects.
const (
	// ReplicaKill SIGKILLs a sharded replica; it is restarted after Down.
	ReplicaKill Kind = "replica-kill"
	// ReplicaStop SIGSTOPs a replica for Down (longer than its lease),
	// then SIGCONTs it.
	ReplicaStop Kind = "replica-stop"
	// ManagerKill SIGKILLs whichever manager leads at that moment; it is
	// restarted after Down.
	ManagerKill Kind = "manager-kill"
	// TargetAPIServer kills a target's kube-apiserver and starts it again
	// on its address after Down.
	TargetAPIServer Kind = "target-apiserver"
	// Etcd kills the one etcd and starts it again on its data directory
	// after Down (every apiserver and Rotor process loses it meanwhile).
	Etcd Kind = "etcd"
	// ControlAPIServer kills the control cluster's kube-apiserver and
	// starts it again after Down.
	ControlAPIServer Kind = "control-apiserver"
	// ReplicaEtcdCut silences a replica's etcd connections for Down
	// (longer than its lease) while it still reaches the apiservers.
	ReplicaEtcdCut Kind = "replica-etcd-cut"
)

// Kinds lists every kind, in report order.
var Kinds = []Kind{ReplicaKill, ReplicaStop, ManagerKill, TargetAPIServer, Etcd, ControlAPIServer, ReplicaEtcdCut}

// class is the resource a fault takes down. At most one fault per class
// is active at once: one replica, one manager (of two, so a leader
// always can be elected), one target (of two, so work has somewhere to
// go), etcd, the control apiserver.
func (k Kind) class() string {
	switch k {
	case ReplicaKill, ReplicaStop, ReplicaEtcdCut:
		return "replica"
	case ManagerKill:
		return "manager"
	}
	return string(k)
}

// Fault is one scheduled fault.
type Fault struct {
	// At is the offset from the start of the load.
	At   time.Duration
	Kind Kind
	// Target is the replica or target-cluster index (unused otherwise).
	Target int
	// Down is how long the component stays down (killed or stopped)
	// before it is brought back.
	Down time.Duration
}

func (f Fault) String() string {
	target := ""
	switch f.Kind {
	case ReplicaKill, ReplicaStop, ReplicaEtcdCut:
		target = fmt.Sprintf(" replica %d", f.Target)
	case TargetAPIServer:
		target = fmt.Sprintf(" target %d", f.Target)
	}
	return fmt.Sprintf("%7s %s%s, down %s", f.At.Round(100*time.Millisecond), f.Kind, target, f.Down.Round(100*time.Millisecond))
}

// ScheduleConfig bounds a schedule.
type ScheduleConfig struct {
	// Duration of the load; no fault starts after Duration - Settle.
	Duration time.Duration
	// Warmup before the first fault (the shard map must settle first).
	Warmup time.Duration
	// Settle is how long a class stays busy after its component is back,
	// so that a fault lands on a recovered system of that class, not on
	// the same hole twice.
	Settle time.Duration
	// MinGap and MaxGap bound the time between two fault attempts; gaps
	// shorter than Down+Settle make faults of different classes overlap.
	MinGap, MaxGap time.Duration
	Replicas       int
	Targets        int
	// LeaseTTL of the replicas: a ReplicaStop lasts 1.5 to 3 of them.
	LeaseTTL time.Duration
	// Kinds enabled (nil: all).
	Kinds []Kind
}

// DefaultScheduleConfig is the soak's schedule for a run of d.
func DefaultScheduleConfig(d time.Duration) ScheduleConfig {
	return ScheduleConfig{Duration: d, Warmup: 15 * time.Second, Settle: 10 * time.Second,
		MinGap: 3 * time.Second, MaxGap: 9 * time.Second, Replicas: 3, Targets: 2, LeaseTTL: 3 * time.Second}
}

// downFor draws how long a fault of kind k keeps its component down.
func (c ScheduleConfig) downFor(r *rand.Rand, k Kind) time.Duration {
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
	switch k {
	case ReplicaStop, ReplicaEtcdCut:
		return between(c.LeaseTTL*3/2, 3*c.LeaseTTL)
	case TargetAPIServer:
		return between(2*time.Second, 8*time.Second)
	case Etcd, ControlAPIServer:
		return between(1*time.Second, 4*time.Second)
	}
	return between(2*time.Second, 5*time.Second) // a pod restart's delay
}

// Schedule draws the faults of a run from seed: the same seed and config
// give the same schedule. A drawn fault whose class is still busy is
// dropped (not delayed), so the draws after it do not depend on timing.
func Schedule(seed int64, c ScheduleConfig) []Fault {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	kinds := c.Kinds
	if kinds == nil {
		kinds = Kinds
	}
	busy := map[string]time.Duration{}
	var out []Fault
	for at := c.Warmup; ; {
		k := kinds[r.IntN(len(kinds))]
		f := Fault{At: at, Kind: k, Down: c.downFor(r, k)}
		switch k {
		case ReplicaKill, ReplicaStop, ReplicaEtcdCut:
			f.Target = r.IntN(c.Replicas)
		case TargetAPIServer:
			f.Target = r.IntN(c.Targets)
		}
		if f.At+f.Down+c.Settle > c.Duration {
			break
		}
		if busy[k.class()] <= at {
			out = append(out, f)
			busy[k.class()] = at + f.Down + c.Settle
		}
		at += c.MinGap + time.Duration(r.Int64N(int64(c.MaxGap-c.MinGap)+1))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Overlaps counts faults that start while a fault of another class is
// still down: the schedule is meant to have some.
func Overlaps(fs []Fault) int {
	n := 0
	for i, f := range fs {
		for _, g := range fs[:i] {
			if g.Kind.class() != f.Kind.class() && f.At < g.At+g.Down {
				n++
				break
			}
		}
	}
	return n
}

// ClassActive reports, for the check of a schedule, the most faults of one
// class whose [At, At+Down) windows overlap.
func ClassActive(fs []Fault) map[string]int {
	most := map[string]int{}
	for i, f := range fs {
		n := 1
		for j, g := range fs {
			if i != j && g.Kind.class() == f.Kind.class() && g.At <= f.At && f.At < g.At+g.Down {
				n++
			}
		}
		most[f.Kind.class()] = max(most[f.Kind.class()], n)
	}
	return most
}
