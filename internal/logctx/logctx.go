// Package logctx carries a structured logger in a context, so that code
// deep in a reconcile round (the executor, the plugins) logs with the
// workflow, partition and epoch the round was started for, without each
// layer passing a logger along.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, key{}, l)
}

// From returns the logger ctx carries, or slog.Default() if none.
func From(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(key{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}

// FromOr returns the logger ctx carries, or fallback if none: code with a
// logger of its own uses it outside rounds.
func FromOr(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(key{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return fallback
}

// WithAttrs returns ctx carrying its logger with args added.
func WithAttrs(ctx context.Context, args ...any) context.Context {
	return With(ctx, From(ctx).With(args...))
}
