package protosim

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// TestProtocolAtScale runs the shard protocol on a real etcd with 200
// lightweight members and 1,024 partitions: single joins and leaves move
// close to the minimum, planning stays fast, and a burst of crashes and
// joins settles within two lease TTLs. make bench runs it at 1,000
// members and 4,096 partitions.
func TestProtocolAtScale(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := localcluster.StartEtcd(ctx, localcluster.Options{Dir: t.TempDir(), BinDir: filepath.Join(root, "bin")})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	etcd, err := env.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	const ttl = 3 * time.Second
	sim, err := Start(ctx, Config{Etcd: etcd, Prefix: "/protosim", Partitions: 1024, TTL: ttl, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	r, err := Run(ctx, sim, Scenario{Members: 200, Moves: 5, ChurnPerMinute: 0.3, ChurnFor: 20 * time.Second, Burst: 0.1, Seed: 1}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	jf, jm := MeanRatio(r.Joins)
	lf, lm := MeanRatio(r.Leaves)
	t.Logf("joins: moved/fair %.3f, moved/minimum %.3f; leaves: moved/fair %.3f, moved/minimum %.3f", jf, jm, lf, lm)
	t.Logf("plan p50 %s p99 %s max %s over %d steps; read p99 %s; publish p99 %s; map %d bytes", r.Plan.P50, r.Plan.P99, r.Plan.Max, r.Plan.N, r.Read.P99, r.Publish.P99, r.MapBytes)
	if len(r.Joins) != 5 || len(r.Leaves) != 5 || r.ChurnEvents < 15 || r.BurstChanges != 20 || r.Plan.N < 20 {
		t.Fatalf("the scenario did not run in full: %d joins, %d leaves, %d churn events, burst %d, %d planning steps", len(r.Joins), len(r.Leaves), r.ChurnEvents, r.BurstChanges, r.Plan.N)
	}
	for i, m := range append(r.Joins, r.Leaves...) {
		if m.Minimum == 0 || m.Moved < m.Minimum {
			t.Errorf("move %d: %d moved, minimum %d", i, m.Moved, m.Minimum)
		}
	}
	if jm > 1.03 || lm > 1.03 {
		t.Errorf("moves exceed the minimum by more than 3%%: joins ×%.3f, leaves ×%.3f", jm, lm)
	}
	if r.Plan.P99 > 100*time.Millisecond {
		t.Errorf("plan p99 %s, goal under 100 ms", r.Plan.P99)
	}
	if r.BurstSettle > 2*ttl {
		t.Errorf("burst settled after %s, goal under 2 × TTL = %s", r.BurstSettle, 2*ttl)
	}
}
