// Package endpoints serves what every Rotor process exposes to its
// operators: /metrics (Prometheus), /healthz (the process answers),
// /readyz (it can do its job now) and, when asked for, /debug/pprof
// (profiles for the benchmarks and for chasing a slow round: off by
// default, since a profile shows what the process holds and costs CPU to
// take).
//
// With Options.Guard, /metrics and /debug/pprof answer only callers RBAC
// allows (kubeauth); /healthz and /readyz stay open, as the kubelet's
// probes carry no token. With Options.TLS they are served over HTTPS.
package endpoints

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rotor-dev/rotor/internal/kubeauth"
)

// Options choose what Serve exposes and how.
type Options struct {
	// Pprof serves /debug/pprof.
	Pprof bool
	// Guard, when set, authorizes every request to /metrics and
	// /debug/pprof.
	Guard *kubeauth.Guard
	// TLS, when set, serves HTTPS.
	TLS *tls.Config
}

// Serve listens on addr until ctx ends. ready returns nil when the
// process is ready, or why not (served with 503). It logs the address it
// listens on as "serving metrics and health" with addr (tests and the
// benchmarks find ports given as :0 that way) and returns it.
func Serve(ctx context.Context, addr string, ready func() error, log *slog.Logger, o Options) (net.Addr, error) {
	guard := func(h http.Handler) http.Handler { return h }
	if o.Guard != nil {
		guard = o.Guard.Wrap
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", guard(promhttp.Handler()))
	if o.Pprof {
		mux.Handle("/debug/pprof/", guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for metrics and health: %w", addr, err)
	}
	log.Info("serving metrics and health", "addr", l.Addr().String(), "tls", o.TLS != nil, "auth", o.Guard != nil, "pprof", o.Pprof)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: o.TLS}
	go func() {
		serve := srv.Serve
		if o.TLS != nil {
			serve = func(l net.Listener) error { return srv.ServeTLS(l, "", "") }
		}
		if err := serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return l.Addr(), nil
}
