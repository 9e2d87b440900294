package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/manager"
	"github.com/rotor-dev/rotor/manager/leader"
	"github.com/rotor-dev/rotor/shard/member"
	"github.com/rotor-dev/rotor/shardproto"
)

// ownership records which replica considers which partition active, and
// fails the test the moment two do at once.
type ownership struct {
	t      *testing.T
	mu     sync.Mutex
	active map[int]string
}

func (o *ownership) start(p int, who string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur, ok := o.active[p]; ok && cur != who {
		o.t.Errorf("partition %d active on %s and %s at once", p, cur, who)
	}
	o.active[p] = who
}

func (o *ownership) stop(p int, who string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.active[p] == who {
		delete(o.active, p)
	}
}

// fakeReplica follows the shard map like a replica would: it stops a
// partition as soon as it is asked to release it, acknowledges after a
// short drain, starts partitions it owns, and acts only while its lease
// deadline holds. Closing freeze stops its renewals, as a crash or a
// SIGSTOP would.
func fakeReplica(ctx context.Context, t *testing.T, c *clientv3.Client, keys shardproto.Keys, name string, own *ownership, freeze <-chan struct{}) *member.Member {
	m, err := member.Join(ctx, c, member.Config{Prefix: keys.Members(), Info: member.Info{Name: name}, TTL: 2 * time.Second, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-freeze:
				return
			case <-time.After(600 * time.Millisecond):
				_ = m.RenewOnce(ctx)
			}
		}
	}()
	go func() {
		active := map[int]bool{}
		defer func() {
			for p := range active {
				own.stop(p, name)
			}
		}()
		w := c.Watch(ctx, keys.Map())
		apply := func(doc *shardproto.Doc) {
			act, rel := doc.Map.Owned(name)
			for p := range active {
				if _, ok := act[p]; !ok {
					own.stop(p, name)
					delete(active, p)
				}
			}
			for p, epoch := range rel {
				time.Sleep(20 * time.Millisecond) // drain in-flight rounds
				ack := shardproto.Ack{Epoch: epoch, Asked: doc.Map[p].Asked}
				_, _ = c.Put(ctx, keys.ReleasedKey(name, p), shardproto.EncodeAck(ack), clientv3.WithLease(m.LeaseID()))
			}
			for p := range act {
				if !active[p] && m.Valid() {
					own.start(p, name)
					active[p] = true
				}
			}
		}
		if resp, err := c.Get(ctx, keys.Map()); err == nil && len(resp.Kvs) > 0 {
			if doc, err := shardproto.Decode(resp.Kvs[0].Value); err == nil {
				apply(doc)
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
				if !m.Valid() {
					return // past its deadline: stop acting on everything
				}
			case resp := <-w:
				for _, ev := range resp.Events {
					if doc, err := shardproto.Decode(ev.Kv.Value); err == nil {
						apply(doc)
					}
				}
			}
		}
	}()
	return m
}

// TestShardProtocol runs two manager instances and fake replicas against
// the real etcd: initial assignment, a graceful scale-up, a replica's
// death, and a leader's death, checking that no partition is ever active
// on two replicas and that epochs move as the handoff rules say.
func TestShardProtocol(t *testing.T) {
	const P = 32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := shardproto.Keys{Prefix: "/test-" + t.Name()}
	c := etcdClient(t)
	own := &ownership{t: t, active: map[int]string{}}
	mgr := func(name string) context.CancelFunc {
		mctx, stop := context.WithCancel(ctx)
		go func() {
			_ = manager.New(etcdClient(t), manager.Config{Name: name, Prefix: keys.Prefix, Ring: shardproto.RingConfig{Partitions: P},
				SessionTTL: 2 * time.Second, Resync: 200 * time.Millisecond, Logger: quietLog}).Run(mctx)
		}()
		return stop
	}
	stopA := mgr("manager-a")
	time.Sleep(200 * time.Millisecond)
	mgr("manager-b")

	// stable waits until every partition has one of owners and none moves.
	stable := func(what string, owners ...string) shardproto.Map {
		t.Helper()
		want := map[string]bool{}
		for _, o := range owners {
			want[o] = true
		}
		deadline := time.After(15 * time.Second)
		var last shardproto.Map
		for {
			resp, err := c.Get(ctx, keys.Map())
			if err == nil && len(resp.Kvs) > 0 {
				doc, _ := shardproto.Decode(resp.Kvs[0].Value)
				last = doc.Map
				done := doc.Map.Moving() == 0
				seen := map[string]bool{}
				for _, s := range doc.Map {
					done = done && want[s.Owner]
					seen[s.Owner] = true
				}
				done = done && len(seen) == len(want)
				if done {
					return doc.Map
				}
			}
			select {
			case <-deadline:
				t.Fatalf("%s: shard map not stable: %+v", what, last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	freeze := map[string]chan struct{}{}
	for _, n := range []string{"r0", "r1", "r2", "r3"} {
		freeze[n] = make(chan struct{})
	}
	for _, n := range []string{"r0", "r1", "r2"} {
		fakeReplica(ctx, t, etcdClient(t), keys, n, own, freeze[n])
	}
	m3 := stable("3 replicas", "r0", "r1", "r2")
	t.Logf("3 replicas: loads %v", loads(m3))

	fakeReplica(ctx, t, etcdClient(t), keys, "r3", own, freeze["r3"])
	m4 := stable("scale to 4", "r0", "r1", "r2", "r3")
	moved := 0
	for p := range m4 {
		if m4[p].Owner != m3[p].Owner {
			moved++
			if m4[p].Owner != "r3" || m4[p].Epoch != m3[p].Epoch+1 {
				t.Errorf("p%d moved %s@%d → %s@%d; want to r3, one epoch up", p, m3[p].Owner, m3[p].Epoch, m4[p].Owner, m4[p].Epoch)
			}
		}
	}
	got := loads(m4)["r3"]
	t.Logf("3 → 4 replicas: %d of %d partitions moved (minimum: r3's %d; fair share %d)", moved, P, got, P/4)
	if got < P/8 || moved < got || moved > got+got/4+1 {
		t.Errorf("3 → 4: r3 got %d partitions (fair share %d) and %d moved: want at least half the share, and moves within a quarter of the minimum", got, P/4, moved)
	}

	start := time.Now()
	close(freeze["r1"]) // r1 stops renewing: its lease runs out
	m3b := stable("r1 dies", "r0", "r2", "r3")
	for p := range m3b {
		if m4[p].Owner == "r1" && (m3b[p].Owner == "r1" || m3b[p].Epoch != m4[p].Epoch+1) {
			t.Errorf("p%d of the dead r1: now %s@%d", p, m3b[p].Owner, m3b[p].Epoch)
		}
	}
	took := time.Since(start)
	t.Logf("r1 stopped renewing (TTL 2s, renewed every 600 ms): its partitions reassigned %s later", took.Round(time.Millisecond))
	// Its last renewal was at most 600 ms before the freeze, so etcd held
	// its lease at least 1.4 s more: an earlier move would have taken the
	// partitions from a replica still entitled to them. The manager sees
	// the expiry within its 200 ms resync, and stable polls every 100 ms.
	if took < 1400*time.Millisecond || took > 3500*time.Millisecond {
		t.Errorf("r1's partitions reassigned %s after it stopped renewing, want between 1.4 s (its lease) and 3.5 s", took)
	}

	stopA() // the leader (a, started first) resigns on the way out
	time.Sleep(1500 * time.Millisecond)
	after := stable("leader change", "r0", "r2", "r3")
	if fmt.Sprint(after) != fmt.Sprint(m3b) {
		t.Errorf("the shard map changed across a leader change:\n%v\n%v", m3b, after)
	}
	if cur, err := leader.Current(ctx, c, keys.Leader()); err != nil || cur != "manager-b" {
		t.Fatalf("leader after manager-a stopped: %q (%v), want manager-b", cur, err)
	}
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func loads(m shardproto.Map) map[string]int {
	out := map[string]int{}
	for _, s := range m {
		out[s.Owner]++
	}
	return out
}
