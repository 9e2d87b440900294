// Package protosim runs the shard protocol at scale on a real etcd: the
// real shard manager (package manager) and many lightweight members, each
// with a real etcd lease renewed every third of its TTL and real release
// acknowledgements, but no reconcile work. It measures what the protocol
// costs and how it moves partitions as members come and go: the
// manager's planning time, partitions moved per join or leave against
// the ideal, and the time to a settled map after a burst of churn.
//
// The members share one watch on the shard map (one decode per map for
// the whole process, where a thousand replicas would each decode it);
// everything they write goes to etcd as a replica's would.
package protosim

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/rotor-dev/rotor/manager"
	"github.com/rotor-dev/rotor/shard/member"
	"github.com/rotor-dev/rotor/shardproto"
)

// Config configures a simulation.
type Config struct {
	Etcd       *clientv3.Client
	Prefix     string
	Partitions int
	// TTL of every member's lease (renewed every TTL/3).
	TTL    time.Duration
	Logger *slog.Logger
}

// Sim is a running simulation: one manager and the members joined so far.
type Sim struct {
	cfg  Config
	keys shardproto.Keys
	log  *slog.Logger

	mu      sync.Mutex
	members map[string]*simMember
	doc     *shardproto.Doc
	steps   []manager.StepTiming
	next    int

	stop func()
	done sync.WaitGroup
}

type simMember struct {
	m     *member.Member
	stop  context.CancelFunc
	crash bool
	// acked: partition → the acknowledgement written.
	acked map[int]shardproto.Ack
}

// Start runs the manager and the shared map watch.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sim{cfg: cfg, keys: shardproto.Keys{Prefix: cfg.Prefix}, log: cfg.Logger, members: map[string]*simMember{}, stop: cancel}
	mgr := manager.New(cfg.Etcd, manager.Config{
		Name: "sim-manager", Prefix: cfg.Prefix, Ring: shardproto.RingConfig{Partitions: cfg.Partitions},
		SessionTTL: 10 * time.Second, Resync: time.Second, Logger: cfg.Logger,
		OnStep: func(t manager.StepTiming) {
			s.mu.Lock()
			s.steps = append(s.steps, t)
			s.mu.Unlock()
		},
	})
	s.done.Add(2)
	go func() { defer s.done.Done(); _ = mgr.Run(ctx) }()
	go func() { defer s.done.Done(); s.follow(ctx) }()
	return s, nil
}

// Stop ends the manager, the watch and every member (leases revoked).
func (s *Sim) Stop() {
	s.mu.Lock()
	for _, m := range s.members {
		m.stop()
	}
	s.mu.Unlock()
	s.stop()
	s.done.Wait()
}

// follow keeps the latest map and writes the acknowledgements it asks
// for, as each member's replica would once it stopped the partition.
func (s *Sim) follow(ctx context.Context) {
	for ctx.Err() == nil {
		resp, err := s.cfg.Etcd.Get(ctx, s.keys.Map())
		if err != nil {
			continue
		}
		if len(resp.Kvs) > 0 {
			s.apply(ctx, resp.Kvs[0].Value)
		}
		for w := range s.cfg.Etcd.Watch(ctx, s.keys.Map(), clientv3.WithRev(resp.Header.Revision+1)) {
			if w.Err() != nil {
				break
			}
			for _, ev := range w.Events {
				s.apply(ctx, ev.Kv.Value)
			}
		}
	}
}

func (s *Sim) apply(ctx context.Context, b []byte) {
	doc, err := shardproto.Decode(b)
	if err != nil {
		s.log.Error("corrupt shard map", "err", err)
		return
	}
	type ack struct {
		m *simMember
		p int
		a shardproto.Ack
		k string
	}
	var acks []ack
	s.mu.Lock()
	s.doc = doc
	for p, part := range doc.Map {
		m := s.members[part.Owner]
		if m == nil || !part.Releasing() || m.crash {
			continue
		}
		a := shardproto.Ack{Epoch: part.Epoch, Asked: part.Asked}
		if m.acked[p] == a {
			continue
		}
		m.acked[p] = a
		acks = append(acks, ack{m, p, a, s.keys.ReleasedKey(part.Owner, p)})
	}
	s.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(32)
	for _, a := range acks {
		g.Go(func() error {
			if _, err := s.cfg.Etcd.Put(ctx, a.k, shardproto.EncodeAck(a.a), clientv3.WithLease(a.m.m.LeaseID())); err != nil {
				s.mu.Lock()
				delete(a.m.acked, a.p) // the next map asks again
				s.mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
}

// Join adds n members and returns their names.
func (s *Sim) Join(ctx context.Context, n int) ([]string, error) {
	var g errgroup.Group
	g.SetLimit(32)
	names := make([]string, n)
	s.mu.Lock()
	for i := range names {
		names[i] = fmt.Sprintf("m-%05d", s.next)
		s.next++
	}
	s.mu.Unlock()
	for _, name := range names {
		g.Go(func() error {
			m, err := member.Join(ctx, s.cfg.Etcd, member.Config{
				Prefix: s.keys.Members(), Info: member.Info{Name: name, Weight: 1}, TTL: s.cfg.TTL, Logger: s.log,
			})
			if err != nil {
				return err
			}
			mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
			sm := &simMember{m: m, stop: stop, acked: map[int]shardproto.Ack{}}
			s.mu.Lock()
			s.members[name] = sm
			s.mu.Unlock()
			s.done.Add(1)
			go func() { defer s.done.Done(); s.renew(mctx, sm) }()
			return nil
		})
	}
	return names, g.Wait()
}

// renew keeps one member's lease: every TTL/3 until stopped; a clean
// leave revokes it, a crash just stops renewing.
func (s *Sim) renew(ctx context.Context, sm *simMember) {
	t := time.NewTicker(s.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			crash := sm.crash
			s.mu.Unlock()
			if !crash {
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _ = s.cfg.Etcd.Revoke(rctx, sm.m.LeaseID())
				cancel()
			}
			return
		case <-t.C:
			if err := sm.m.RenewOnce(ctx); err != nil {
				return
			}
		}
	}
}

// Leave removes members: crash stops renewing their leases (etcd drops
// them a TTL later); otherwise they leave cleanly (lease revoked).
func (s *Sim) Leave(names []string, crash bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if m := s.members[n]; m != nil {
			m.crash = crash
			m.stop()
			delete(s.members, n)
		}
	}
}

// Live lists the members that have not left, sorted.
func (s *Sim) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.members))
	for n := range s.members {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Settled waits until the published map is one the manager would not
// change for the live members: every partition with the owner planning
// gives it (manager.Plan's shardproto.AssignFrom from the map itself), no
// release pending. It returns that map and how long it waited.
func (s *Sim) Settled(ctx context.Context, timeout time.Duration) (*shardproto.Doc, time.Duration, error) {
	start := time.Now()
	live := s.Live()
	ms := make([]shardproto.RingMember, len(live))
	for i, n := range live {
		ms[i] = shardproto.RingMember{Name: n, Weight: 1}
	}
	deadline := time.After(timeout)
	var want shardproto.Assignment
	var planned *shardproto.Doc
	for {
		s.mu.Lock()
		doc := s.doc
		s.mu.Unlock()
		// Plan only for a map not seen yet: at 1,000 members a plan costs
		// tens of milliseconds of the CPU the manager being timed shares.
		if doc != nil && doc != planned {
			planned = doc
			var err error
			if want, err = shardproto.AssignFrom(shardproto.RingConfig{Partitions: s.cfg.Partitions}, ms, manager.Targets(doc.Map)); err != nil {
				return nil, 0, err
			}
			if settled(doc.Map, want) {
				return doc, time.Since(start), nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-deadline:
			off := 0
			if doc != nil && want != nil {
				for p := range doc.Map {
					if doc.Map[p].Owner != want[p] || doc.Map[p].Releasing() {
						off++
					}
				}
			}
			return nil, 0, fmt.Errorf("shard map not settled after %s: %d of %d partitions not yet with the ring's owner among %d live members", timeout, off, s.cfg.Partitions, len(live))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func settled(m shardproto.Map, want shardproto.Assignment) bool {
	if len(m) != len(want) {
		return false
	}
	for p := range m {
		if m[p].Owner != want[p] || m[p].Releasing() {
			return false
		}
	}
	return true
}

// Steps returns the manager's planning steps so far and forgets them.
func (s *Sim) Steps() []manager.StepTiming {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.steps
	s.steps = nil
	return out
}
