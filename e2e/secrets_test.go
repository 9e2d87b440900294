package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	nethttp "net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/cluster"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

const secretWorkflow = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    use-env:
      outputs: {digest: string}
      container:
        image: busybox
        env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: SECRET, key: token}}}]
        command: [sh, -c, 'echo "{\"digest\": \"$(printf %s "$TOKEN" | sha256sum | cut -c1-64)\"}" > $ROTOR_OUTPUT_FILE']
    call:
      type: http
      outputs: {ok: boolean}
      http:
        url: BASE/hook
        secretHeaders: [{name: Authorization, prefix: "Bearer ", secretKeyRef: {name: SECRET, key: token}}]
  nodes: [{name: env, task: use-env}, {name: call, task: call}]
  outputs: {digest: "{{nodes.env.outputs.digest}}"}
`

// TestSecretsReachTasksOnly: a task's env from a Secret of its namespace
// reaches its container (the process runtime resolves it as a kubelet
// does, in the target, where Rotor copied the Secret), and an http task's
// header from the same Secret reaches the endpoint; the value appears
// nowhere in the control cluster's Workflow objects or events, nor in any
// component's log, and the pod carries the reference, not the value.
// Negative cases: a workflow naming a missing Secret fails SecretNotFound
// and creates no pod; after the Secret is deleted the next run fails the
// same way and the target's copy is gone.
func TestSecretsReachTasksOnly(t *testing.T) {
	ctx := context.Background()
	// One target for the namespace: a copy is made, updated and deleted
	// on the cluster a pod of the task is placed on, so the revocation
	// below must land where the first copy was.
	ns := fmt.Sprintf("t-%d", nsSeq.Add(1))
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Annotations: map[string]string{cluster.AnnotationAllowedClusters: "target-1"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	token := "s3cr3t-" + hex.EncodeToString(raw)
	if _, err := env.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Data: map[string][]byte{"token": []byte(token)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var auth []string
	srv := &nethttp.Server{Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, `{"ok": true}`)
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	wfYAML := func(name, secret string) string {
		return strings.NewReplacer("NAME", name, "SECRET", secret, "BASE", "http://"+l.Addr().String()).Replace(secretWorkflow)
	}

	wf := waitDone(t, submit(t, ns, wfYAML("uses-secret", "api")), 90*time.Second)
	sum := sha256.Sum256([]byte(token))
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s: %s", wf.Status.Phase, wf.Status.Message)
	}
	if got := string(wf.Status.Outputs["digest"].Raw); got != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("the container saw a TOKEN with digest %s, want the Secret's %x", got, sum)
	}
	mu.Lock()
	if len(auth) != 1 || auth[0] != "Bearer "+token {
		t.Fatalf("the endpoint got Authorization %d times (%q), want once with the Secret's token", len(auth), auth)
	}
	mu.Unlock()

	// The pod refers to the Secret; the target holds Rotor's copy.
	pods := env.TaskPods(t, ns, pod.LabelWorkflowUID+"="+string(wf.UID))
	if len(pods) != 1 || pods[0].Cluster != "target-1" {
		t.Fatalf("%d task pods (%+v), want 1 on target-1, the namespace's one allowed cluster", len(pods), pods)
	}
	var ref *corev1.SecretKeySelector
	for _, e := range pods[0].Pod.Spec.Containers[0].Env {
		if strings.Contains(e.Value, token) {
			t.Fatalf("pod env %s carries the Secret's value", e.Name)
		}
		if e.Name == "TOKEN" && e.ValueFrom != nil {
			ref = e.ValueFrom.SecretKeyRef
		}
	}
	if ref == nil || ref.Name != "api" || ref.Key != "token" {
		t.Fatalf("pod env TOKEN refers to %+v, want secret api key token", ref)
	}
	target := env.Targets[targetIndex(t, pods[0].Cluster)]
	cp, err := target.CoreV1().Secrets(ns).Get(ctx, "api", metav1.GetOptions{})
	if err != nil || string(cp.Data["token"]) != token || cp.Labels[pod.LabelSecretCopy] != "true" {
		t.Fatalf("the copy in %s: %+v %v, want Rotor's copy with the token", pods[0].Cluster, cp, err)
	}

	// A Secret that does not exist: no pod, no call, a reason.
	missing := waitDone(t, submit(t, ns, wfYAML("no-secret", "nope")), 60*time.Second)
	if missing.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("a workflow naming a missing Secret ended %s, want Failed", missing.Status.Phase)
	}
	for _, n := range []string{"env", "call"} {
		if r := missing.Status.Nodes[n].Reason; r != plugins.ReasonSecretNotFound {
			t.Errorf("node %s of the missing-Secret workflow: reason %q (%s), want %s", n, r, missing.Status.Nodes[n].Message, plugins.ReasonSecretNotFound)
		}
	}
	if n := len(env.TaskPods(t, ns, pod.LabelWorkflowUID+"="+string(missing.UID))); n != 0 {
		t.Fatalf("the missing-Secret workflow created %d pods, want none", n)
	}

	// Revoked: deleted in the control cluster, gone from the target at
	// the next pod, and that run fails.
	if err := env.Kube.CoreV1().Secrets(ns).Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	revoked := waitDone(t, submit(t, ns, wfYAML("revoked", "api")), 60*time.Second)
	if revoked.Status.Phase != v1alpha1.WorkflowFailed || revoked.Status.Nodes["env"].Reason != plugins.ReasonSecretNotFound {
		t.Fatalf("after the Secret was deleted: %s, node env %+v; want SecretNotFound", revoked.Status.Phase, revoked.Status.Nodes["env"])
	}
	if _, err := target.CoreV1().Secrets(ns).Get(ctx, "api", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the copy in %s after its source was deleted: %v, want NotFound", pods[0].Cluster, err)
	}
	mu.Lock()
	if len(auth) != 1 {
		t.Fatalf("the endpoint was called %d times, want only by the first workflow", len(auth))
	}
	mu.Unlock()

	// Nowhere in the control cluster's Workflows and events, or the logs.
	forms := []string{token, base64.StdEncoding.EncodeToString([]byte(token))}
	wfs, err := env.Rotor.RotorV1alpha1().Workflows(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(wfs.Items) != 3 {
		t.Fatalf("%d workflows (%v), want 3", len(wfs.Items), err)
	}
	events, err := env.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(events.Items) == 0 {
		t.Fatalf("%d events in %s (%v): want the workflows' events to search", len(events.Items), ns, err)
	}
	for what, obj := range map[string]any{"workflows": wfs, "events": events} {
		b, _ := json.Marshal(obj)
		for _, f := range forms {
			if strings.Contains(string(b), f) {
				t.Errorf("the Secret's value appears in the control cluster's %s", what)
			}
		}
	}
	logs := env.Logs()
	if len(logs) < 3 {
		t.Fatalf("%d component logs, want every component's", len(logs))
	}
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range forms {
			if strings.Contains(string(b), f) {
				t.Errorf("the Secret's value appears in %s", path)
			}
		}
	}
}

func targetIndex(t *testing.T, cluster string) int {
	t.Helper()
	for i, c := range env.Env.Targets {
		if c.Name == cluster {
			return i
		}
	}
	t.Fatalf("no target %s", cluster)
	return -1
}
