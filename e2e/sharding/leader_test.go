package sharding

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/leader"
	"github.com/rotor-dev/rotor/shardproto"
)

// TestManagerLeaderKilled: SIGKILL the leading rotor-manager. The standby
// must lead within the session TTL + 1 s, and the shard map must not
// change.
func TestManagerLeaderKilled(t *testing.T) {
	const ttl = 3 * time.Second
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2,
		Sharding: localcluster.ShardingOptions{LeaseTTL: ttl}})
	before := waitStableMap(t, env, 3)
	c := env.Etcd(t)
	ctx := context.Background()
	keys := shardproto.Keys{Prefix: localcluster.ShardPrefix}
	first, err := leader.Current(ctx, c, keys.Leader())
	if err != nil || first == "" {
		t.Fatalf("no leader: %v", err)
	}
	killed := time.Now()
	if err := process(t, env, first).Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var next string
	for time.Since(killed) < 3*ttl {
		if next, _ = leader.Current(ctx, c, keys.Leader()); next != "" && next != first {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("leader %s killed: %s leads %s later (session TTL %s)", first, next, took.Round(time.Millisecond), ttl)
	if next == "" || next == first || took > ttl+time.Second {
		t.Fatalf("standby %q led after %s, want within TTL + 1s = %s", next, took, ttl+time.Second)
	}
	time.Sleep(2 * time.Second) // the new leader replans at least once
	after := waitStableMap(t, env, 3)
	if fmt.Sprint(after.Map) != fmt.Sprint(before.Map) {
		t.Fatalf("the shard map changed across the leader change:\n%v\n%v", before.Map, after.Map)
	}
}
