package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
