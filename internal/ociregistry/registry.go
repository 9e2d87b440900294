package ociregistry

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Config configures New.
type Config struct {
	// Dir holds the blobs; it is created if missing.
	Dir string
	// Logger receives one line per request at Info and ggcr's own lines at
	// Debug; nil discards them.
	Logger *slog.Logger
}

// New returns the registry handler, to be served at the site root.
func New(cfg Config) (http.Handler, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("registry blob directory is empty: set Config.Dir (--dir)")
	}
	// ggcr's disk handler creates its temporary files in Dir without
	// creating Dir first.
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create blob directory: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := registry.New(
		registry.WithBlobHandler(registry.NewDiskBlobHandler(cfg.Dir)),
		registry.Logger(slog.NewLogLogger(log.Handler(), slog.LevelDebug)),
	)
	return logRequests(reg, log), nil
}

// logRequests logs method, path, status and duration (milliseconds) of
// every request.
func logRequests(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	})
}

// statusWriter records the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// CheckListenAddr accepts only host:port addresses on loopback
// (127.0.0.0/8, ::1 or localhost): the registry has no authentication, so
// anything else would let the network push images into the sandbox.
func CheckListenAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w (want host:port, like 127.0.0.1:5000)", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("listen address %q is not loopback: the registry has no authentication; use 127.0.0.1:<port>", addr)
}
