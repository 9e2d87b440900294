// Package tracing sets up OpenTelemetry for Rotor's processes and gives
// each workflow execution one trace.
//
// A workflow is driven by many reconcile rounds, possibly on several
// replicas over its life (handoffs, restarts), so no process can hold its
// root span open. Instead the trace ID and the root span ID are derived
// from the Workflow's UID: every round, on any replica, starts its span
// under the same remote parent, and the replica that sees the execution
// end emits the root span itself with those IDs and the execution's
// start and end times.
package tracing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/types"
)

const scope = "github.com/rotor-dev/rotor"

// Tracer is Rotor's tracer from the global provider (a no-op until Setup
// installs an exporting one).
func Tracer() trace.Tracer { return otel.Tracer(scope) }

// Options configure export.
type Options struct {
	// Endpoint is the OTLP/gRPC collector (host:port). Empty: nothing is
	// exported and spans are not recorded.
	Endpoint string
	// Insecure sends without TLS (a collector sidecar on localhost).
	Insecure bool
	// SampleRatio is the share of workflow executions traced (0..1].
	SampleRatio float64
}

// BindFlags registers --otlp-endpoint, --otlp-insecure and
// --trace-sample-ratio. The endpoint defaults to $OTEL_EXPORTER_OTLP_ENDPOINT.
func BindFlags(fs *flag.FlagSet) *Options {
	o := &Options{}
	fs.StringVar(&o.Endpoint, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"),
		"OTLP/gRPC collector (host:port) to send traces to; empty sends none")
	fs.BoolVar(&o.Insecure, "otlp-insecure", false, "send traces without TLS (a collector on localhost)")
	fs.Float64Var(&o.SampleRatio, "trace-sample-ratio", 1, "share of workflow executions traced, 0 to 1")
	return o
}

// sampleRatio is read by Workflow; Setup sets it.
var sampleRatio = 1.0

// Setup installs the global tracer provider for service. With no endpoint
// it installs nothing and returns a no-op shutdown. Call shutdown before
// exiting to flush the spans still buffered.
func Setup(ctx context.Context, service string, o Options) (shutdown func(context.Context) error, err error) {
	if o.SampleRatio <= 0 || o.SampleRatio > 1 {
		return nil, fmt.Errorf("--trace-sample-ratio %v: want a number in (0, 1]", o.SampleRatio)
	}
	sampleRatio = o.SampleRatio
	if o.Endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(o.Endpoint)}
	if o.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter for %s: %w", o.Endpoint, err)
	}
	host, _ := os.Hostname()
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", service), attribute.String("service.instance.id", host)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := NewProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}

// NewProvider is an SDK provider that honours the workflow root IDs (tests
// pass an in-memory exporter here).
func NewProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	opts = append([]sdktrace.TracerProviderOption{
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}, opts...)
	return sdktrace.NewTracerProvider(opts...)
}

// IDs returns the trace ID and root span ID of a workflow execution.
func IDs(uid types.UID) (trace.TraceID, trace.SpanID) {
	sum := sha256.Sum256([]byte(uid))
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], sum[:16])
	copy(sid[:], sum[16:24])
	return tid, sid
}

// sampled makes the same decision as a TraceIDRatioBased sampler, from
// the trace ID alone, so every replica agrees on it.
func sampled(tid trace.TraceID) bool {
	if sampleRatio >= 1 {
		return true
	}
	return binary.BigEndian.Uint64(tid[8:16])>>1 < uint64(sampleRatio*(1<<63))
}

// Workflow returns ctx with the execution's root span as remote parent:
// spans started from it join the workflow's trace.
func Workflow(ctx context.Context, uid types.UID) context.Context {
	tid, sid := IDs(uid)
	flags := trace.TraceFlags(0)
	if sampled(tid) {
		flags = trace.FlagsSampled
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true,
	}))
}

// rootIDs, in a context, are the IDs the next root span gets.
type rootIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// EndWorkflow emits the root span of an execution that ran from start to
// end. Call it once, from the round that records the terminal phase.
func EndWorkflow(ctx context.Context, uid types.UID, start, end time.Time, attrs ...attribute.KeyValue) {
	tid, sid := IDs(uid)
	if !sampled(tid) {
		return
	}
	// A root span: no parent, IDs forced through the context.
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	ctx = context.WithValue(ctx, rootIDs{}, rootIDs{tid, sid})
	_, span := Tracer().Start(ctx, "workflow", trace.WithTimestamp(start), trace.WithAttributes(attrs...),
		trace.WithSpanKind(trace.SpanKindInternal))
	span.End(trace.WithTimestamp(end))
}

// idGenerator is the SDK's random generator, except for a workflow's root
// span, whose IDs come from EndWorkflow.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if ids, ok := ctx.Value(rootIDs{}).(rootIDs); ok {
		return ids.trace, ids.span
	}
	return randomTraceID(), randomSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return randomSpanID() }

// LogHandler adds trace_id and span_id to records logged with a context
// that carries a span, so a log line leads to its trace.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}
func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

// Start begins a child span of whatever span ctx carries.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return Tracer().Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends span, recording err (if any) as its status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
