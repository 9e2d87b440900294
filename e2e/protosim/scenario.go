package protosim

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/rotor-dev/rotor/manager"
	"github.com/rotor-dev/rotor/shardproto"
)

// Scenario is what Run does, in order: join Members; Moves single joins
// and Moves single clean leaves, each from a settled map to the next;
// ChurnFor of membership churn at ChurnPerMinute of the members per
// minute (half joins, half leaves, leaves alternating clean and crashed);
// then a burst of Burst × Members changes at once (half crashes, half
// joins).
type Scenario struct {
	Members        int
	Moves          int
	ChurnPerMinute float64
	ChurnFor       time.Duration
	Burst          float64
	// Seed picks who leaves.
	Seed int64
}

// Move is one join or leave between two settled maps.
type Move struct {
	// Moved partitions changed owner.
	Moved int
	// Minimum is what had to move: the newcomer's partitions after a
	// join, the leaver's before a leave.
	Minimum int
	// Fair is P / members (after a join, before a leave): the ideal.
	Fair float64
}

// Quantiles of a set of durations.
type Quantiles struct {
	N             int
	P50, P99, Max time.Duration
}

func quantiles(ds []time.Duration) Quantiles {
	if len(ds) == 0 {
		return Quantiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Quantiles{N: len(s), P50: s[len(s)/2], P99: s[(len(s)*99)/100], Max: s[len(s)-1]}
}

// Report is what Run measured.
type Report struct {
	Members, Partitions int
	TTL                 time.Duration
	// JoinSettle is how long the initial joins took to a settled map.
	JoinSettle  time.Duration
	Joins       []Move
	Leaves      []Move
	ChurnEvents int
	// ChurnSettle is the time to a settled map after the churn stopped.
	ChurnSettle time.Duration
	// Plan, Read and Publish time the manager's planning steps (Plan is
	// pure computation; Publish only counts steps that wrote a map).
	Plan, Read, Publish Quantiles
	// MapBytes is the size of the last map published.
	MapBytes     int
	BurstChanges int
	// BurstSettle is the time from the burst to a settled map.
	BurstSettle time.Duration
}

// MeanRatio is the mean over moves of moved / fair share, and of moved /
// minimum.
func MeanRatio(ms []Move) (toFair, toMinimum float64) {
	for _, m := range ms {
		toFair += float64(m.Moved) / m.Fair
		if m.Minimum > 0 {
			toMinimum += float64(m.Moved) / float64(m.Minimum)
		}
	}
	n := float64(max(len(ms), 1))
	return toFair / n, toMinimum / n
}

// Run plays the scenario on a started simulation.
func Run(ctx context.Context, s *Sim, sc Scenario, logf func(string, ...any)) (*Report, error) {
	rng := rand.New(rand.NewSource(sc.Seed))
	settle := 2*s.cfg.TTL + 30*time.Second
	r := &Report{Members: sc.Members, Partitions: s.cfg.Partitions, TTL: s.cfg.TTL}
	start := time.Now()
	if _, err := s.Join(ctx, sc.Members); err != nil {
		return nil, fmt.Errorf("join %d members: %w", sc.Members, err)
	}
	doc, _, err := s.Settled(ctx, settle)
	if err != nil {
		return nil, fmt.Errorf("after the initial joins: %w", err)
	}
	r.JoinSettle = time.Since(start)
	logf("%d members joined, map settled after %s", sc.Members, r.JoinSettle.Round(time.Millisecond))
	var steps []manager.StepTiming
	steps = append(steps, s.Steps()...)
	for i := 0; i < sc.Moves; i++ {
		n := len(s.Live())
		names, err := s.Join(ctx, 1)
		if err != nil {
			return nil, err
		}
		after, _, err := s.Settled(ctx, settle)
		if err != nil {
			return nil, fmt.Errorf("after join %d: %w", i, err)
		}
		r.Joins = append(r.Joins, Move{Moved: moved(doc.Map, after.Map), Minimum: owned(after.Map, names[0]), Fair: float64(s.cfg.Partitions) / float64(n+1)})
		doc = after
		live := s.Live()
		leaver := live[rng.Intn(len(live))]
		s.Leave([]string{leaver}, false)
		after, _, err = s.Settled(ctx, settle)
		if err != nil {
			return nil, fmt.Errorf("after leave %d: %w", i, err)
		}
		r.Leaves = append(r.Leaves, Move{Moved: moved(doc.Map, after.Map), Minimum: owned(doc.Map, leaver), Fair: float64(s.cfg.Partitions) / float64(len(live))})
		if m := r.Leaves[len(r.Leaves)-1]; m.Moved != m.Minimum {
			logf("leave %d (%s): %d moved, minimum %d: %s", i, leaver, m.Moved, m.Minimum, describe(doc.Map, after.Map, leaver))
		}
		doc = after
	}
	steps = append(steps, s.Steps()...)
	if sc.ChurnFor > 0 && sc.ChurnPerMinute > 0 {
		every := time.Duration(float64(time.Minute) / (sc.ChurnPerMinute * float64(sc.Members)))
		t := time.NewTicker(every)
		end := time.After(sc.ChurnFor)
	churn:
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-end:
				break churn
			case <-t.C:
			}
			r.ChurnEvents++
			if i%2 == 0 {
				if _, err := s.Join(ctx, 1); err != nil {
					t.Stop()
					return nil, err
				}
				continue
			}
			live := s.Live()
			s.Leave([]string{live[rng.Intn(len(live))]}, i%4 == 3)
		}
		t.Stop()
		churnEnd := time.Now()
		if _, _, err = s.Settled(ctx, settle); err != nil {
			return nil, fmt.Errorf("after churn: %w", err)
		}
		r.ChurnSettle = time.Since(churnEnd)
		logf("churn: %d changes over %s (%.0f%% of the members per minute), settled %s after", r.ChurnEvents, sc.ChurnFor, sc.ChurnPerMinute*100, r.ChurnSettle.Round(time.Millisecond))
	}
	steps = append(steps, s.Steps()...)
	if sc.Burst > 0 {
		n := int(sc.Burst * float64(sc.Members))
		live := s.Live()
		rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		burstAt := time.Now()
		s.Leave(live[:n/2], true)
		if _, err := s.Join(ctx, n-n/2); err != nil {
			return nil, err
		}
		if _, _, err = s.Settled(ctx, settle); err != nil {
			return nil, fmt.Errorf("after a burst of %d changes: %w", n, err)
		}
		r.BurstChanges, r.BurstSettle = n, time.Since(burstAt)
		logf("burst: %d members crashed and %d joined at once: settled after %s (TTL %s)", n/2, n-n/2, r.BurstSettle.Round(time.Millisecond), s.cfg.TTL)
	}
	steps = append(steps, s.Steps()...)
	var plan, read, pub []time.Duration
	for _, st := range steps {
		plan, read = append(plan, st.Plan), append(read, st.Read)
		if st.Published {
			pub = append(pub, st.Publish)
		}
	}
	r.Plan, r.Read, r.Publish = quantiles(plan), quantiles(read), quantiles(pub)
	if b, err := s.cfg.Etcd.Get(ctx, s.keys.Map()); err == nil && len(b.Kvs) > 0 {
		r.MapBytes = len(b.Kvs[0].Value)
	}
	return r, nil
}

func moved(a, b shardproto.Map) int {
	n := 0
	for p := range a {
		if a[p].Owner != b[p].Owner {
			n++
		}
	}
	return n
}

func owned(m shardproto.Map, who string) int {
	n := 0
	for _, p := range m {
		if p.Owner == who {
			n++
		}
	}
	return n
}

// describe lists the partitions that moved without being the leaver's.
func describe(a, b shardproto.Map, leaver string) string {
	var out []string
	for p := range a {
		if a[p].Owner != b[p].Owner && a[p].Owner != leaver {
			out = append(out, fmt.Sprintf("p%d %s→%s", p, a[p].Owner, b[p].Owner))
		}
	}
	return strings.Join(out, ", ")
}
