package logctx

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestLoggerTravelsWithTheContext(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	if From(context.Background()) != slog.Default() {
		t.Fatal("a context without a logger must give slog.Default()")
	}
	if FromOr(context.Background(), l) != l {
		t.Fatal("FromOr must give the fallback when the context has no logger")
	}
	ctx := WithAttrs(With(context.Background(), l), "workflow", "ns/wf", "epoch", 7)
	From(ctx).Info("round")
	if FromOr(ctx, slog.Default()) == slog.Default() {
		t.Fatal("FromOr must prefer the context's logger")
	}
	out := buf.String()
	for _, want := range []string{"msg=round", "workflow=ns/wf", "epoch=7"} {
		if !strings.Contains(out, want) {
			t.Errorf("log line %q lacks %q", out, want)
		}
	}
}
