package tracing

import (
	"crypto/rand"

	"go.opentelemetry.io/otel/trace"
)

// crypto/rand never fails on Linux; IDs need only be unique.
func randomTraceID() (t trace.TraceID) {
	for !t.IsValid() {
		_, _ = rand.Read(t[:])
	}
	return t
}

func randomSpanID() (s trace.SpanID) {
	for !s.IsValid() {
		_, _ = rand.Read(s[:])
	}
	return s
}
