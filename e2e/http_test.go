package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// TestHTTPTask runs an http task that starts an asynchronous job on a
// server in this test (127.0.0.1), polls it, and passes its outputs on to
// a pod task.
func TestHTTPTask(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	var polls atomic.Int32
	var gotKey atomic.Value
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/jobs", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		gotKey.Store(r.Header.Get("Idempotency-Key"))
		var in map[string]int
		_ = json.NewDecoder(r.Body).Decode(&in)
		fmt.Fprintf(w, `{"statusURL": "%s/jobs/1?n=%d"}`, base, in["n"])
	})
	mux.HandleFunc("/jobs/1", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if polls.Add(1) < 3 {
			fmt.Fprint(w, `{"state": "running"}`)
			return
		}
		fmt.Fprintf(w, `{"state": "succeeded", "outputs": {"doubled": %s0}}`, r.URL.Query().Get("n"))
	})
	srv := &nethttp.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	wf := waitDone(t, submit(t, namespace(t), strings.ReplaceAll(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: webhook}
spec:
  tasks:
    start-job:
      type: http
      inputs: {n: integer}
      outputs: {doubled: integer}
      http: {url: "BASE/jobs", pollInterval: 200ms}
    echo:
      inputs: {v: integer}
      outputs: {v: integer}
      container: {image: busybox, command: [sh, -c, 'echo "{\"v\": {{inputs.v}}}" > $ROTOR_OUTPUT_FILE']}
  nodes:
  - {name: call, task: start-job, inputs: {n: 4}}
  - {name: after, task: echo, inputs: {v: "{{nodes.call.outputs.doubled}}"}}
  outputs: {v: "{{nodes.after.outputs.v}}"}
`, "BASE", base)), 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["v"].Raw) != "40" {
		t.Fatalf("workflow %s (%s), v = %s; want 40", wf.Status.Phase, wf.Status.Message, wf.Status.Outputs["v"].Raw)
	}
	a := wf.Status.Nodes["call"].Attempts
	if polls.Load() < 3 || len(a) != 1 || a[0].Cluster != "" {
		t.Fatalf("polls %d, attempts %+v; want 3 polls and one attempt on no cluster", polls.Load(), a)
	}
	if k, _ := gotKey.Load().(string); k != string(wf.UID)+"/call/0" {
		t.Fatalf("Idempotency-Key %q", k)
	}
}

// TestHTTPTaskURLPolicy: an http task calls nothing its install or its
// namespace does not allow. The sandbox allows http://127.0.0.1: only, so
// this test's server, named localhost, is refused (with a reason, no
// request made) until a namespace's annotation allows it, and then only in
// that namespace.
func TestHTTPTaskURLPolicy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	foreign := "http://localhost:" + port
	var calls atomic.Int32
	srv := &nethttp.Server{Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{"ok": true}`)
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	// A pod node first: by the time the http node runs, the propeller's
	// namespace cache has long seen the annotation set before submitting.
	src := strings.ReplaceAll(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: hook}
spec:
  tasks:
    wait:
      container: {image: busybox, command: [sh, -c, 'sleep 1']}
    notify:
      type: http
      outputs: {ok: boolean}
      http: {url: "URL/hook/done"}
  nodes:
  - {name: first, task: wait}
  - {name: call, task: notify, dependsOn: [first]}
`, "URL", foreign)

	allowed := namespace(t)
	ctx := context.Background()
	ns, err := env.Kube.CoreV1().Namespaces().Get(ctx, allowed, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Annotations = map[string]string{"rotor.dev/http-allowed-url-prefixes": foreign + "/hook/"}
	if _, err := env.Kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("annotate namespace %s: %v", allowed, err)
	}
	wf := waitDone(t, submit(t, allowed, src), 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || calls.Load() != 1 {
		t.Fatalf("in the annotated namespace: workflow %s (%s), %d calls; want Succeeded after 1 call", wf.Status.Phase, wf.Status.Message, calls.Load())
	}

	for _, other := range []string{namespace(t), namespace(t)} {
		wf := waitDone(t, submit(t, other, src), 60*time.Second)
		call := wf.Status.Nodes["call"]
		if wf.Status.Phase != v1alpha1.WorkflowFailed || call.Reason != "URLNotAllowed" ||
			!strings.Contains(call.Message, foreign+"/hook/done") || !strings.Contains(call.Message, "namespace "+other) {
			t.Fatalf("in namespace %s: workflow %s, node call %s %s %q; want Failed, URLNotAllowed naming the URL and namespace",
				other, wf.Status.Phase, call.Phase, call.Reason, call.Message)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("the server got %d calls, want only the annotated namespace's 1", calls.Load())
	}
}
