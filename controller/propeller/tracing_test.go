package propeller

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
	"github.com/rotor-dev/rotor/controller/generated/clientset/versioned/fake"
	"github.com/rotor-dev/rotor/internal/tracing"
	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// twoStep answers Running for an attempt's first Handle and Succeeded
// after that, so a chain takes one round per step.
type twoStep struct{ seen map[string]bool }

func (*twoStep) Type() string { return "pod" }
func (f *twoStep) Handle(_ context.Context, tc *plugins.TaskContext) (plugins.PhaseInfo, error) {
	name := pod.Name(tc.ID)
	if !f.seen[name] {
		f.seen[name] = true
		return plugins.PhaseInfo{Phase: plugins.PhaseRunning, Resource: name}, nil
	}
	return plugins.PhaseInfo{Phase: plugins.PhaseSucceeded, Resource: name}, nil
}
func (*twoStep) Abort(context.Context, *plugins.TaskContext) error    { return nil }
func (*twoStep) Finalize(context.Context, *plugins.TaskContext) error { return nil }

type oneCluster struct{}

func (oneCluster) Pick(plugins.TaskID, *v1alpha1.TaskTemplate, map[string]string) (*plugins.Cluster, error) {
	return &plugins.Cluster{Name: "c"}, nil
}
func (oneCluster) Get(name string) (*plugins.Cluster, bool) {
	return &plugins.Cluster{Name: name}, true
}
func (oneCluster) Health(string) plugins.ClusterHealth { return plugins.ClusterHealth{Known: true} }

// clientScope reads workflows straight from the (fake) client.
type clientScope struct{ c *fake.Clientset }

func (clientScope) Acquire(string) (int64, func(), bool) { return 3, func() {}, true }
func (s clientScope) Get(ns, name string) (*v1alpha1.Workflow, error) {
	return s.c.RotorV1alpha1().Workflows(ns).Get(context.Background(), name, metav1.GetOptions{})
}
func (clientScope) CanWrite() bool       { return true }
func (clientScope) Fenced(string, int64) {}
func (clientScope) HasSynced() bool      { return true }

// TestRoundsTraceOneExecution runs a two-node chain through the controller
// with the SDK's in-memory exporter and checks the trace: one trace per
// execution whose ID comes from the UID, a reconcile span per round under
// the execution's root span, plugin calls and status writes as children
// of their round, the root span emitted at the end, and the trace ID on
// the log lines of the rounds. It also checks that the round that launched
// b after seeing a's pod end measured orchestration overhead.
func TestRoundsTraceOneExecution(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.NewProvider(sdktrace.WithSyncer(exp))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	wf := &v1alpha1.Workflow{
		ObjectMeta: metav1.ObjectMeta{Name: "chain", Namespace: "team", UID: "0b7c6d7e-uid",
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))},
		Spec: v1alpha1.WorkflowSpec{
			Tasks: map[string]v1alpha1.TaskTemplate{"t": {Container: &v1alpha1.ContainerSpec{Image: "busybox"}}},
			Nodes: []v1alpha1.Node{{Name: "a", Task: "t"}, {Name: "b", Task: "t", DependsOn: []string{"a"}}},
		},
	}
	client := fake.NewSimpleClientset(wf)
	var logs bytes.Buffer
	exec := &executor.Executor{Plugins: plugins.NewRegistry(&twoStep{seen: map[string]bool{}}), Clusters: oneCluster{},
		Clock: clock.RealClock{}, MaxSystemRetries: 1}
	c := New(client, clientScope{client}, exec, Options{
		Logger: slog.New(tracing.LogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	})
	before := overheadSamples(t)
	key := "team/chain"
	for round := 0; round < 6; round++ {
		got, err := client.RotorV1alpha1().Workflows("team").Get(context.Background(), "chain", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase.IsTerminal() {
			break
		}
		if a := got.Status.Nodes["a"]; a.Phase == v1alpha1.NodeRunning {
			// a's pod ended: the event that starts the overhead clock.
			c.EnqueuePod("c", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team",
				Annotations: map[string]string{pod.AnnotWorkflow: "chain"}}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}})
		}
		c.queue.Add(key)
		c.processNext(context.Background())
	}
	got, _ := client.RotorV1alpha1().Workflows("team").Get(context.Background(), "chain", metav1.GetOptions{})
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s, want Succeeded: %s", got.Status.Phase, got.Status.Message)
	}
	if n := overheadSamples(t) - before; n != 1 {
		t.Errorf("overhead samples: %d, want 1 (b launched in the round that saw a end)", n)
	}

	tid, root := tracing.IDs(wf.UID)
	spans := exp.GetSpans()
	byID := map[string]tracetest.SpanStub{}
	count := map[string]int{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID().String()] = s
		count[s.Name]++
		if s.SpanContext.TraceID() != tid {
			t.Errorf("span %s in trace %s, want the execution's %s", s.Name, s.SpanContext.TraceID(), tid)
		}
	}
	// finalizer round, a launched, a done + b launched, b done.
	if count["reconcile"] != 4 || count["plugin.handle"] != 4 || count["kube.update_status"] != 3 ||
		count["kube.update"] != 1 || count["workflow"] != 1 {
		t.Errorf("span counts %v, want 4 reconcile, 4 plugin.handle, 3 kube.update_status, 1 kube.update, 1 workflow", count)
	}
	for _, s := range spans {
		parent := s.Parent.SpanID()
		switch s.Name {
		case "reconcile":
			if parent != root || !s.Parent.IsRemote() {
				t.Errorf("reconcile span's parent %s (remote %v), want the root %s", parent, s.Parent.IsRemote(), root)
			}
		case "plugin.handle", "kube.update_status", "kube.update":
			if p, ok := byID[parent.String()]; !ok || p.Name != "reconcile" {
				t.Errorf("%s span's parent %s is not a reconcile span", s.Name, parent)
			}
		case "workflow":
			if s.SpanContext.SpanID() != root || s.Parent.IsValid() {
				t.Errorf("workflow span %s with parent %s, want root ID %s and no parent", s.SpanContext.SpanID(), parent, root)
			}
			if !s.StartTime.Equal(wf.CreationTimestamp.Time) || !s.EndTime.After(s.StartTime) {
				t.Errorf("workflow span from %s to %s, want from the creation time %s", s.StartTime, s.EndTime, wf.CreationTimestamp)
			}
		}
	}
	phaseLines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] != "workflow phase changed" && rec["msg"] != "node phase changed" {
			continue
		}
		phaseLines++
		if rec["trace_id"] != tid.String() || rec["namespace"] != "team" || rec["workflow"] != "chain" {
			t.Errorf("log line without the execution's trace ID, namespace or workflow: %s", line)
		}
	}
	if phaseLines < 5 {
		t.Errorf("%d phase change log lines, want at least 5:\n%s", phaseLines, logs.String())
	}
}

func overheadSamples(t *testing.T) uint64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "rotor_node_orchestration_overhead_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
