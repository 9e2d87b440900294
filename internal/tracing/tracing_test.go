package tracing

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/types"
)

// collector is an OTLP/gRPC trace receiver that keeps what it gets.
type collector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans map[string]string // span name → trace ID (hex)
}

func (c *collector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.spans[s.Name] = hex.EncodeToString(s.TraceId)
			}
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// TestSetupExportsOverOTLP: with an endpoint, spans of a workflow's
// rounds reach the collector in the execution's trace; the root span too.
func TestSetupExportsOverOTLP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{spans: map[string]string{}}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	shutdown, err := Setup(t.Context(), "rotor-test", Options{Endpoint: l.Addr().String(), Insecure: true, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	uid := types.UID("5d1c-uid")
	_, span := Start(Workflow(t.Context(), uid), "reconcile")
	span.End()
	EndWorkflow(t.Context(), uid, time.Now().Add(-1e9), time.Now())
	if err := shutdown(t.Context()); err != nil { // flushes the batch
		t.Fatal(err)
	}
	tid, _ := IDs(uid)
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, name := range []string{"reconcile", "workflow"} {
		if col.spans[name] != tid.String() {
			t.Errorf("collector got span %q in trace %q, want %s (all: %v)", name, col.spans[name], tid, col.spans)
		}
	}
}

// TestSamplingIsPerExecution: about the ratio of executions are kept
// (the decision is a function of the UID alone, so replicas agree by
// construction), and a ratio outside (0, 1] is refused.
func TestSamplingIsPerExecution(t *testing.T) {
	defer func() { sampleRatio = 1 }()
	sampleRatio = 0.25
	kept := 0
	for i := range 4000 {
		tid, _ := IDs(types.UID(fmt.Sprintf("uid-%d", i)))
		if sampled(tid) {
			kept++
		}
	}
	if kept < 900 || kept > 1100 {
		t.Errorf("kept %d of 4000 executions at ratio 0.25", kept)
	}
	if _, err := Setup(t.Context(), "x", Options{SampleRatio: 0}); err == nil {
		t.Error("ratio 0 accepted")
	}
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("namespace", "team")
	ctx := Workflow(t.Context(), "u-1")
	log.InfoContext(ctx, "with a span")
	log.Info("without")
	tid, sid := IDs("u-1")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.Contains(lines[0], `"trace_id":"`+tid.String()+`"`) || !strings.Contains(lines[0], `"span_id":"`+sid.String()+`"`) ||
		!strings.Contains(lines[0], `"namespace":"team"`) {
		t.Errorf("line with a span context: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("line without one: %s", lines[1])
	}
}
