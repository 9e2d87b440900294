// Package sharding tests Rotor with several sharded replicas and two shard
// managers on real apiservers and etcd, and reads the control apiserver's
// audit log to check who wrote what.
package sharding

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

const chain = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    step:
      inputs: {i: integer}
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/outputs: '{"v": 1}'}}
      container: {image: busybox}
  nodes:
  - {name: a, task: step, inputs: {i: 0}}
  - {name: b, task: step, inputs: {i: "{{nodes.a.outputs.v}}"}}
`

// waitStableMap waits until the shard map gives every partition to one of
// n replicas with nothing moving, and returns it.
func waitStableMap(t *testing.T, env *harness.Env, n int) *shardproto.Doc {
	t.Helper()
	doc, err := harness.WaitShardMap(context.Background(), env.Etcd(t), n, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func submitMany(t *testing.T, env *harness.Env, namespaces, perNamespace int) []*v1alpha1.Workflow {
	t.Helper()
	ctx := context.Background()
	var out []*v1alpha1.Workflow
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, namespaces)
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("tenant-%02d", n)
		if err := env.CreateNamespaces(ctx, ns); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := 0; i < perNamespace; i++ {
				wf := &v1alpha1.Workflow{}
				if err := manifest.Unmarshal([]byte(strings.Replace(chain, "NAME", fmt.Sprintf("wf-%02d", i), 1)), wf); err != nil {
					errs <- err
					return
				}
				created, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				out = append(out, created)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

// auditWrite is one successful write of a workflow's status.
type auditWrite struct {
	User string
	At   time.Time
}

// statusWriters reads the audit log: successful writes of workflows and
// workflows/status, per namespace/name, in order.
func statusWriters(t *testing.T, path string) map[string][]auditWrite {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	out := map[string][]auditWrite{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Stage string `json:"stage"`
			Verb  string `json:"verb"`
			User  struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource, Namespace, Name, Subresource string
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
			StageTimestamp time.Time `json:"stageTimestamp"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Stage != "ResponseComplete" || ev.ResponseStatus.Code >= 300 {
			continue
		}
		if ev.ObjectRef.Resource != "workflows" || (ev.Verb != "update" && ev.Verb != "patch") {
			continue
		}
		if !strings.HasPrefix(ev.User.Username, "rotor-propeller-") {
			continue
		}
		key := ev.ObjectRef.Namespace + "/" + ev.ObjectRef.Name
		out[key] = append(out[key], auditWrite{User: ev.User.Username, At: ev.StageTimestamp})
	}
	return out
}

// TestShardedReplicasOneWriterEach: 3 replicas, 60 namespaces, 600
// workflows: all succeed, each replica reconciles only its shard, and the
// audit log shows every workflow written by exactly one replica.
func TestShardedReplicasOneWriterEach(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2})
	doc := waitStableMap(t, env, 3)
	loads := map[string]int{}
	for _, p := range doc.Map {
		loads[p.Owner]++
	}
	t.Logf("shard map: %d partitions over 3 replicas: %v", len(doc.Map), loads)
	checkShardEndpoints(t, env, doc)
	start := time.Now()
	submitMany(t, env, 60, 10)
	items := env.WaitWorkflows(t, 600, 5*time.Minute)
	t.Logf("600 workflows (1,200 task nodes) done in %s", time.Since(start).Round(time.Second))
	for _, wf := range items {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded || wf.Status.ShardEpoch == 0 {
			t.Fatalf("%s/%s: %s at epoch %d (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.ShardEpoch, wf.Status.Message)
		}
	}
	time.Sleep(2 * time.Second) // the audit log is flushed in batches
	writers := statusWriters(t, env.Control.AuditLog)
	perReplica := map[string]int{}
	for _, wf := range items {
		key := wf.Namespace + "/" + wf.Name
		users := map[string]bool{}
		for _, w := range writers[key] {
			users[w.User] = true
		}
		if len(users) != 1 {
			t.Errorf("%s written by %v, want exactly one replica", key, users)
		}
		for u := range users {
			perReplica[u]++
		}
	}
	t.Logf("workflows per writing replica (audit log): %v", perReplica)
}

// checkShardEndpoints: every replica answers /readyz once its shard synced
// and exports one rotor_shard_partition_epoch series per partition the map
// gives it, with the map's epoch.
func checkShardEndpoints(t *testing.T, env *harness.Env, doc *shardproto.Doc) {
	t.Helper()
	want := map[string]map[string]string{} // replica → partition → epoch
	for p, s := range doc.Map {
		if want[s.Owner] == nil {
			want[s.Owner] = map[string]string{}
		}
		want[s.Owner][strconv.Itoa(p)] = strconv.FormatInt(s.Epoch, 10)
	}
	series := regexp.MustCompile(`(?m)^rotor_shard_partition_epoch\{partition="(\d+)"\} (\d+)$`)
	for owner, parts := range want {
		addr, err := env.MetricsAddr(owner)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			if code, _ := httpGet("http://" + addr + "/readyz"); code != http.StatusOK {
				return false, nil
			}
			code, body := httpGet("http://" + addr + "/metrics")
			if code != http.StatusOK {
				return false, nil
			}
			got = map[string]string{}
			for _, m := range series.FindAllStringSubmatch(body, -1) {
				got[m[1]] = m[2]
			}
			return maps.Equal(got, parts), nil
		})
		if err != nil {
			t.Fatalf("%s: not ready, or partition epochs %v, want the map's %v", owner, got, parts)
		}
	}
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sequence is a Workflow named name of steps tasks in a row, each taking
// duration on kwok and passing its output to the next.
func sequence(name string, steps int, duration string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: %s}
spec:
  tasks:
    step:
      inputs: {i: integer}
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/duration: %s, sim.rotor.dev/outputs: '{"v": 1}'}}
      container: {image: busybox}
  nodes:
  - {name: s0, task: step, inputs: {i: 0}}
`, name, duration)
	for i := 1; i < steps; i++ {
		fmt.Fprintf(&b, "  - {name: s%d, task: step, inputs: {i: \"{{nodes.s%d.outputs.v}}\"}}\n", i, i-1)
	}
	return b.String()
}
