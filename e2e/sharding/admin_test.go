package sharding

import (
	"context"
	"crypto/tls"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

func rotor(t *testing.T, env *harness.Env, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(env.RepoRoot, "bin", "rotor"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rotor %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestAdminAPI: rotor shards shows the map, a drain moves every partition
// away from a replica (and WatchShardMap streams the change), and a
// rebalance gives it its share back.
func TestAdminAPI(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2})
	waitStableMap(t, env, 3)
	if err := env.CreateNamespaces(context.Background(), "alpha", "beta"); err != nil {
		t.Fatal(err)
	}
	addr := env.ManagerAdmin[1] // a standby answers as well as the leader
	admin := []string{"--manager", addr, "--tls-ca", env.CAFile(), "--kubeconfig", env.Control.Kubeconfig}
	out := rotor(t, env, append([]string{"shards"}, admin...)...)
	for _, want := range []string{"64 partitions", "rotor-propeller-0", "rotor-propeller-1", "rotor-propeller-2", "alpha"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotor shards does not show %q:\n%s", want, out)
		}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: caPool(t, env)})),
		grpc.WithPerRPCCredentials(bearerToken(env.Tokens["rotor-admin"])))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := adminpb.NewAdminClient(conn).WatchShardMap(ctx, &adminpb.WatchShardMapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first shard map from the stream: %v", err)
	}
	out = rotor(t, env, append([]string{"shards", "drain", "rotor-propeller-0", "--wait"}, admin...)...)
	if !strings.Contains(out, "0 partitions left") {
		t.Fatalf("drain: %s", out)
	}
	m, err := stream.Recv()
	if err != nil {
		t.Fatalf("stream after the drain: %v", err)
	}
	t.Logf("WatchShardMap streamed revision %d after the drain", m.Revision)
	doc := waitStableMap(t, env, 2)
	for p, s := range doc.Map {
		if s.Owner == "rotor-propeller-0" {
			t.Fatalf("partition %d still on the drained replica", p)
		}
	}
	out = rotor(t, env, append([]string{"shards", "rebalance"}, admin...)...)
	t.Logf("%s", strings.TrimSpace(out))
	doc = waitStableMap(t, env, 3)
	n := 0
	for _, s := range doc.Map {
		if s.Owner == "rotor-propeller-0" {
			n++
		}
	}
	t.Logf("after rebalance rotor-propeller-0 owns %d partitions again", n)
}
