package sharding

import (
	"context"
	"errors"
	"fmt"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/etcdroles"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

const rolesWorkflow = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    square:
      inputs: {x: integer}
      outputs: {y: integer}
      cache: {version: v1}
      metadata: {annotations: {sim.rotor.dev/outputs: '{"y": 36}'}}
      container: {image: busybox}
    notify:
      type: http
      inputs: {y: integer}
      outputs: {ok: boolean}
      http: {url: "BASE/notify"}
  nodes:
  - {name: a, task: square, inputs: {x: 6}}
  - {name: b, task: notify, inputs: {y: "{{nodes.a.outputs.y}}"}}
`

// TestEtcdRoles: with etcd's auth on, the manager and the replica connect
// as their own etcd users (CN rotor-manager, rotor-propeller) and their
// roles cover what they do: the map is published and followed, a cached
// task is stored and then hit, an http task's answer is journaled. The
// fence holds: the replica's certificate reads the shard map but cannot
// write it, campaign, or ask for a drain; the manager's cannot write a
// membership or read the answers of tenants' http calls. Every sharded
// test runs on such an etcd, so each also proves the roles suffice for
// what it exercises (drains, takeovers, capacity slots).
func TestEtcdRoles(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 1, Sharded: true, Managers: 1})
	ctx := context.Background()
	root := env.Etcd(t)
	st, err := root.AuthStatus(ctx)
	if err != nil || !st.Enabled {
		t.Fatalf("etcd auth status: %+v, %v; want enabled", st, err)
	}
	for _, name := range []string{"rotor-manager-0", "rotor-propeller-0"} {
		p, err := env.Process(name)
		if err != nil {
			t.Fatal(err)
		}
		user := strings.TrimSuffix(name, "-0")
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
		if err != nil {
			t.Fatal(err)
		}
		if args := strings.ReplaceAll(string(cmdline), "\x00", " "); !strings.Contains(args, "--etcd-cert-file="+env.EtcdUsers[user].CertFile) {
			t.Fatalf("%s does not connect as etcd user %s: %s", name, user, args)
		}
	}
	// The lower bound: both users did their part.
	doc := waitStableMap(t, env, 1)
	if doc.Leader != "rotor-manager-0" {
		t.Fatalf("shard map written by %q, want rotor-manager-0", doc.Leader)
	}

	var calls atomic.Int32
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/notify", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{"ok": true}`)
	})
	srv := &nethttp.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	if err := env.CreateNamespaces(ctx, "team-roles"); err != nil {
		t.Fatal(err)
	}
	run := func(name string) *v1alpha1.Workflow {
		t.Helper()
		wf := &v1alpha1.Workflow{}
		spec := strings.NewReplacer("NAME", name, "BASE", "http://"+l.Addr().String()).Replace(rolesWorkflow)
		if err := manifest.Unmarshal([]byte(spec), wf); err != nil {
			t.Fatal(err)
		}
		created, err := env.Rotor.RotorV1alpha1().Workflows("team-roles").Create(ctx, wf, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		done := env.WaitWorkflow(t, created, 90*time.Second, func(w *v1alpha1.Workflow) bool { return w.Status.Phase.IsTerminal() })
		if done.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s: %s (%s), want Succeeded", name, done.Status.Phase, done.Status.Message)
		}
		return done
	}
	run("first")
	second := run("second")
	if r := second.Status.Nodes["a"].Reason; r != "CacheHit" {
		t.Errorf("second run's node a: reason %q, want CacheHit (the replica reads the cache)", r)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("the http task was called %d times, want 2 (one per workflow)", n)
	}
	count := func(prefix string) int64 {
		t.Helper()
		resp, err := root.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	if n := count("/rotor/cache/entries/team-roles/"); n != 1 {
		t.Errorf("%d cache entries of team-roles, want 1", n)
	}
	if n := count("/rotor/calls/"); n < 2 {
		t.Errorf("%d journaled http answers, want at least 2", n)
	}

	propeller, err := env.EtcdClientAs(etcdroles.Propeller)
	if err != nil {
		t.Fatal(err)
	}
	defer propeller.Close()
	manager, err := env.EtcdClientAs(etcdroles.Manager)
	if err != nil {
		t.Fatal(err)
	}
	defer manager.Close()
	k := shardproto.Keys{Prefix: localcluster.ShardPrefix}
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s: %v, want etcd's permission denied", what, err)
		}
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v, want it allowed", what, err)
		}
	}
	_, err = propeller.Get(ctx, k.Map())
	allowed("replica reads the shard map", err)
	_, err = propeller.Put(ctx, k.Map(), `{"partitions": 1, "map": [{"owner": "rotor-propeller-9", "epoch": 99}]}`)
	denied("replica writes the shard map", err)
	_, err = propeller.Txn(ctx).Then(clientv3.OpPut(k.Map(), "{}")).Commit()
	denied("replica writes the shard map in a transaction", err)
	_, err = propeller.Delete(ctx, k.Map())
	denied("replica deletes the shard map", err)
	_, err = propeller.Put(ctx, k.DrainKey("rotor-propeller-0"), "now")
	denied("replica asks for a drain", err)
	if s, err := concurrency.NewSession(propeller, concurrency.WithTTL(5)); err != nil {
		t.Errorf("replica's lease: %v", err)
	} else {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		denied("replica campaigns for leader", concurrency.NewElection(s, k.Leader()).Campaign(cctx, "rotor-propeller-0"))
		cancel()
		s.Close()
	}
	_, err = propeller.Put(ctx, k.Members()+"rotor-propeller-roles-test", "{}")
	allowed("replica writes a membership", err)
	_, err = root.Delete(ctx, k.Members()+"rotor-propeller-roles-test")
	allowed("root deletes the test's membership", err)

	_, err = manager.Put(ctx, k.Members()+"rotor-propeller-0", "{}")
	denied("manager writes a membership", err)
	_, err = manager.Get(ctx, "/rotor/calls/", clientv3.WithPrefix())
	denied("manager reads the call journal", err)
	_, err = manager.Get(ctx, "/rotor-control/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	denied("manager reads the control apiserver's keys", err)
	_, err = manager.Get(ctx, "/rotor/cache/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	allowed("manager reads the cache (rotor cache ls)", err)

	// rotor etcd roles --apply finds the sandbox's etcd as planned, and
	// narrows a role widened by hand back to the plan.
	rotorRoles := func() string {
		t.Helper()
		cmd := exec.Command(filepath.Join(env.RepoRoot, "bin", "rotor"), append([]string{"etcd", "roles", "--apply"}, env.EtcdFlags()...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rotor etcd roles --apply: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := rotorRoles(); !strings.Contains(out, "nothing changed") {
		t.Errorf("rotor etcd roles --apply on the sandbox's etcd changed something:\n%s", out)
	}
	if _, err := root.RoleGrantPermission(ctx, etcdroles.Propeller, "/rotor/", clientv3.GetPrefixRangeEnd("/rotor/"), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		t.Fatal(err)
	}
	if out := rotorRoles(); !strings.Contains(out, "role rotor-propeller: revoked readwrite on /rotor/*") {
		t.Errorf("rotor etcd roles --apply after widening the replicas' role:\n%s\nwant the grant on /rotor/* revoked", out)
	}
	_, err = propeller.Put(ctx, k.Map(), "{}")
	denied("replica writes the shard map after the role was narrowed again", err)

	// The map is still the leader's, and the replica still owns it all.
	after, err := harness.ShardMap(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if after.Leader != "rotor-manager-0" || after.Map[0].Owner != "rotor-propeller-0" {
		t.Errorf("shard map after the attempts: leader %q, partition 0 owned by %q", after.Leader, after.Map[0].Owner)
	}
}
