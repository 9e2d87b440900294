package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/manager/autoscale"
	"github.com/rotor-dev/rotor/manager/leader"
	"github.com/rotor-dev/rotor/shardproto"
)

// Config configures a manager instance.
type Config struct {
	// Name identifies this instance in the election.
	Name string
	// Prefix is the etcd prefix of the whole layout (package shardproto).
	Prefix string
	Ring   shardproto.RingConfig
	// SessionTTL bounds how long a dead leader blocks the standby.
	SessionTTL time.Duration
	// Resync re-plans even without events (default 1s).
	Resync time.Duration
	Logger *slog.Logger
	// OnMap, if set, is called with every map this instance publishes.
	OnMap func(shardproto.Map)
	// Autoscale turns the replicas' reported load into a desired count.
	Autoscale autoscale.Config
	// Scale, if set, applies the desired count (e.g. a StatefulSet's
	// scale subresource); called by the leader when the count changes.
	Scale func(ctx context.Context, replicas int) error
	// OnLead, if set, runs while this instance leads (for example the
	// cluster prober, which must run in one process only); its context
	// ends with the leadership.
	OnLead func(ctx context.Context)
	// Clock drives the resync, the campaign retry, the autoscale samples
	// and the handoff pause metric (default the real clock).
	Clock clock.WithTicker
	// OnStep, if set, is told how long each planning step took.
	OnStep func(StepTiming)
}

// StepTiming is one planning step of the leader: reading the members and
// acknowledgements, computing the next map (pure), and publishing it
// (zero when nothing changed).
type StepTiming struct {
	Read, Plan, Publish time.Duration
	Members             int
	Published           bool
}

// Manager campaigns, and while leading keeps the shard map current.
type Manager struct {
	client *clientv3.Client
	cfg    Config
	keys   shardproto.Keys
	log    *slog.Logger

	samples []autoscale.Sample
	applied int
	// version is the version of the last map this leader published.
	version int64
	// asked holds when each partition's owner was asked to release it,
	// for the handoff pause metric (lost on a change of leader).
	asked map[int]time.Time
}

// New returns a manager; Run starts it.
func New(client *clientv3.Client, cfg Config) *Manager {
	if cfg.Resync == 0 {
		cfg.Resync = time.Second
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 10 * time.Second
	}
	if cfg.Ring.Partitions == 0 {
		cfg.Ring.Partitions = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Manager{client: client, cfg: cfg, keys: shardproto.Keys{Prefix: cfg.Prefix}, log: cfg.Logger.With("manager", cfg.Name),
		asked: map[int]time.Time{}}
}

// recordMoves counts the partitions that changed owner from cur to next
// and updates the shard map metrics.
func (m *Manager) recordMoves(cur, next shardproto.Map) (moved int) {
	now := m.cfg.Clock.Now()
	owners := map[string]int{}
	for p := range next {
		owners[next[p].Owner]++
		if next[p].Releasing() && !cur[p].Releasing() {
			m.asked[p] = now
		}
		if next[p].Owner == cur[p].Owner {
			continue
		}
		moved++
		switch {
		case cur[p].Owner == "":
			handoffs.WithLabelValues("assign").Inc()
		case cur[p].Releasing() && next[p].Owner == cur[p].Next:
			handoffs.WithLabelValues("graceful").Inc()
			if at, ok := m.asked[p]; ok {
				handoffPause.Observe(now.Sub(at).Seconds())
			}
		default:
			handoffs.WithLabelValues("takeover").Inc() // the owner's lease was gone
		}
		delete(m.asked, p)
	}
	partitionsByOwner.Reset()
	for o, n := range owners {
		if o == "" {
			o = "(none)"
		}
		partitionsByOwner.WithLabelValues(o).Set(float64(n))
	}
	moving.Set(float64(next.Moving()))
	return moved
}

// Run campaigns until ctx ends, leading whenever it wins. On return it
// resigns, so a standby takes over at once.
func (m *Manager) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		l, err := leader.Campaign(ctx, m.client, m.keys.Leader(), m.cfg.Name, m.cfg.SessionTTL)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("campaign failed, retrying in 1s", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-m.cfg.Clock.After(time.Second):
			}
			continue
		}
		m.log.Info("leading the shard manager")
		isLeader.Set(1)
		m.samples, m.applied = nil, 0
		err = m.lead(ctx, l)
		isLeader.Set(0)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = l.Resign(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			m.log.Warn("leadership ended", "err", err)
		}
	}
	return nil
}

func (m *Manager) lead(ctx context.Context, l *leader.Leader) error {
	doc, rev, err := shardproto.Load(ctx, m.client, m.keys, m.cfg.Ring.Partitions)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if m.cfg.OnLead != nil {
		done := make(chan struct{})
		go func() { defer close(done); m.cfg.OnLead(wctx) }()
		defer func() { cancel(); <-done }()
	}
	events := watchAll(wctx, m.client, m.keys.Watched(), rev+1)
	tick := m.cfg.Clock.NewTicker(m.cfg.Resync)
	defer tick.Stop()
	cur := doc.Map
	m.version = doc.Version
	for {
		next, err := m.step(ctx, l, cur)
		if errors.Is(err, leader.ErrNotLeader) {
			return err
		}
		if err != nil {
			m.log.Warn("planning the shard map failed", "err", err)
		} else {
			cur = next
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.Done():
			return errors.New("election session lost")
		case resp, ok := <-events:
			if !ok || resp.Err() != nil {
				return fmt.Errorf("watch %s: %v", m.cfg.Prefix, resp.Err())
			}
			drain(events)
		case <-tick.C():
		}
	}
}

// watchAll merges watches of prefixes, each from revision rev, into one
// channel; it closes when ctx ends or any watch ends (the caller then
// leads again from a fresh read). One watch per prefix rather than one on
// the whole shard prefix: see shardproto.Keys.Watched.
func watchAll(ctx context.Context, c *clientv3.Client, prefixes []string, rev int64) clientv3.WatchChan {
	out := make(chan clientv3.WatchResponse)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range prefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel() // one watch ended: end them all
			for resp := range c.Watch(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
				select {
				case out <- resp:
				case <-ctx.Done():
					return
				}
				if resp.Err() != nil {
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); cancel(); close(out) }()
	return out
}

// drain swallows events already queued: one plan covers them all. It
// returns at once when the channel is closed (the watch ended): a closed
// channel is always ready, and reading it in a loop spun forever — the
// manager hung on shutdown, and for good had its watch ever ended.
func drain(ch clientv3.WatchChan) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// step reads members and acknowledgements, plans, and publishes a change.
func (m *Manager) step(ctx context.Context, l *leader.Leader, cur shardproto.Map) (shardproto.Map, error) {
	var timing StepTiming
	t0 := m.cfg.Clock.Now()
	snap, err := shardproto.ReadSnapshot(ctx, m.client, m.keys)
	if err != nil {
		return cur, err
	}
	timing.Members = len(snap.Members)
	m.autoscale(ctx, snap.Members)
	for _, name := range snap.StaleDrains {
		if err := l.Write(ctx, clientv3.OpDelete(m.keys.DrainKey(name))); err != nil {
			return cur, err
		}
	}
	t1 := m.cfg.Clock.Now()
	timing.Read = t1.Sub(t0)
	version := m.version + 1
	next, err := Plan(cur, snap.Members, snap.Acks, m.cfg.Ring, version)
	if err != nil {
		return cur, err
	}
	t2 := m.cfg.Clock.Now()
	timing.Plan = t2.Sub(t1)
	planSeconds.Observe(timing.Plan.Seconds())
	if reflect.DeepEqual(next, cur) {
		m.report(timing)
		return cur, nil
	}
	b, _ := json.Marshal(shardproto.Doc{Partitions: m.cfg.Ring.Partitions, Map: next, Version: version, Leader: m.cfg.Name})
	if err := l.Write(ctx, clientv3.OpPut(m.keys.Map(), string(b))); err != nil {
		return cur, err
	}
	timing.Publish, timing.Published = m.cfg.Clock.Since(t2), true
	m.report(timing)
	m.version = version
	m.deleteConsumedAcks(ctx, l, cur, next)
	moved := m.recordMoves(cur, next)
	m.log.Info("shard map published", "version", version, "members", len(snap.Members), "moved", moved, "releasing", next.Moving(),
		"plan", timing.Plan)
	if m.cfg.OnMap != nil {
		m.cfg.OnMap(next)
	}
	return next, nil
}

// deleteConsumedAcks removes the acknowledgements of partitions that
// changed owner. It is hygiene, not safety: an acknowledgement names its
// epoch and request, so an old one never answers a later request, and it
// dies with its member's lease anyway. It is not part of the map's write
// because etcd caps a transaction at 128 operations (--max-txn-ops): a
// map moving more partitions than that at once (a replica of two dying
// at P = 256) could never be published.
func (m *Manager) deleteConsumedAcks(ctx context.Context, l *leader.Leader, cur, next shardproto.Map) {
	const batch = 100
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if err := l.Write(ctx, ops...); err != nil {
			m.log.Warn("deleting consumed release acknowledgements failed; they expire with their members' leases", "keys", len(ops), "err", err)
		}
		ops = ops[:0]
	}
	for p := range next {
		if next[p].Owner != cur[p].Owner && cur[p].Owner != "" {
			ops = append(ops, clientv3.OpDelete(m.keys.ReleasedKey(cur[p].Owner, p)))
			if len(ops) == batch {
				flush()
			}
		}
	}
	flush()
}

func (m *Manager) report(t StepTiming) {
	if m.cfg.OnStep != nil {
		m.cfg.OnStep(t)
	}
}

// autoscale records the load the members report and exports (and, with
// Scale, applies) the desired replica count.
func (m *Manager) autoscale(ctx context.Context, members map[string]shardproto.MemberInfo) {
	load := 0
	for _, info := range members {
		load += info.Workflows
	}
	now := m.cfg.Clock.Now()
	m.samples = append(m.samples, autoscale.Sample{At: now, Workflows: load})
	var desired int
	desired, m.samples = autoscale.Desired(m.cfg.Autoscale, m.samples, now)
	activeWorkflows.Set(float64(load))
	desiredReplicas.Set(float64(desired))
	liveReplicas.Set(float64(len(members)))
	if m.cfg.Scale == nil || desired == m.applied {
		return
	}
	if err := m.cfg.Scale(ctx, desired); err != nil {
		m.log.Warn("applying the desired replica count failed", "desired", desired, "err", err)
		return
	}
	m.log.Info("replica count set", "desired", desired, "activeWorkflows", load)
	m.applied = desired
}

var (
	desiredReplicas = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rotor_manager_desired_replicas", Help: "Replicas the load calls for (autoscale signal).",
	})
	activeWorkflows = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rotor_manager_active_workflows", Help: "Active workflows reported by all replicas.",
	})
	liveReplicas = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rotor_manager_live_replicas", Help: "Replicas holding a membership lease.",
	})
	isLeader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rotor_manager_leader", Help: "1 while this instance leads.",
	})
	handoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_manager_partition_moves_total",
		Help: "Partitions given a new owner: assign (had none), graceful (released by a live owner), takeover (owner's lease gone).",
	}, []string{"kind"})
	handoffPause = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rotor_manager_handoff_pause_seconds",
		Help:    "Graceful handoffs: from asking the owner to release a partition to publishing its new owner (nobody reconciles it meanwhile).",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
	})
	partitionsByOwner = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rotor_manager_partitions", Help: "Partitions per owner in the shard map this leader published.",
	}, []string{"owner"})
	moving = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rotor_manager_partitions_moving", Help: "Partitions waiting for their owner to acknowledge a release.",
	})
	planSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rotor_manager_plan_seconds",
		Help:    "Computing the next shard map from the members and acknowledgements (the ring and the handoff rules), per planning step.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
)

func init() {
	prometheus.MustRegister(desiredReplicas, activeWorkflows, liveReplicas, isLeader,
		handoffs, handoffPause, partitionsByOwner, moving, planSeconds)
}
