package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/manager/leader"
)

// TestLeaderElectionGuardsWrites: one of two candidates leads; the other
// takes over when it resigns or its session dies; a deposed leader's
// writes fail.
func TestLeaderElectionGuardsWrites(t *testing.T) {
	ctx := context.Background()
	prefix := "/test-" + t.Name() + "/leader"
	key := "/test-" + t.Name() + "/shardmap"
	c1, c2 := etcdClient(t), etcdClient(t)
	a, err := leader.Campaign(ctx, c1, prefix, "manager-a", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Write(ctx, clientv3.OpPut(key, "from a")); err != nil {
		t.Fatalf("leader write: %v", err)
	}
	bCh := make(chan *leader.Leader, 1)
	go func() {
		b, err := leader.Campaign(ctx, c2, prefix, "manager-b", 2*time.Second)
		if err == nil {
			bCh <- b
		}
	}()
	select {
	case <-bCh:
		t.Fatal("a second leader while the first still leads")
	case <-time.After(500 * time.Millisecond):
	}
	if cur, _ := leader.Current(ctx, c1, prefix); cur != "manager-a" {
		t.Fatalf("current leader %q, want manager-a", cur)
	}
	// Depose a behind its back: its lease is revoked as if it had expired.
	start := time.Now()
	if _, err := c2.Revoke(ctx, clientv3.LeaseID(leaseOf(t, c2, prefix))); err != nil {
		t.Fatal(err)
	}
	var b *leader.Leader
	select {
	case b = <-bCh:
		t.Logf("standby led %s after the leader's session ended", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("standby did not take over")
	}
	if err := a.Write(ctx, clientv3.OpPut(key, "stale a")); !errors.Is(err, leader.ErrNotLeader) {
		t.Fatalf("deposed leader's write = %v, want ErrNotLeader", err)
	}
	if err := b.Write(ctx, clientv3.OpPut(key, "from b")); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	resp, _ := c1.Get(ctx, key)
	if string(resp.Kvs[0].Value) != "from b" {
		t.Fatalf("value %q, want the new leader's", resp.Kvs[0].Value)
	}
	if err := b.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

// leaseOf finds the lease of the oldest election key under prefix.
func leaseOf(t *testing.T, c *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := c.Get(context.Background(), prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("no election key under %s: %v", prefix, err)
	}
	return resp.Kvs[0].Lease
}
