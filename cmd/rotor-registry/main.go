// Command rotor-registry is the OCI registry of the Rotor sandbox: the
// registry of go-containerregistry with blobs on disk under --dir, serving
// plain HTTP on a loopback address only. `rotor dev up` pushes the images of
// `make image` into it. A development component; see package ociregistry,
// in particular: manifests and tags are kept in memory, so a restart loses
// them (the blobs stay, and a re-push uploads only manifests).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rotor-dev/rotor/internal/ociregistry"
)

func main() {
	var listen, dir, level string
	flag.StringVar(&listen, "listen", "127.0.0.1:5000", "loopback host:port to serve on (port 0 picks a free one)")
	flag.StringVar(&dir, "dir", "", "directory for the blobs (created if missing)")
	flag.StringVar(&level, "log-level", "info", "debug adds go-containerregistry's own lines; info logs one line per request")
	flag.Parse()
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(os.Stderr, "rotor-registry: --log-level %q: want debug, info, warn or error\n", level)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, listen, dir, log); err != nil {
		log.Error("rotor-registry failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, dir string, log *slog.Logger) error {
	if err := ociregistry.CheckListenAddr(listen); err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("--dir is required: the registry stores blobs there")
	}
	h, err := ociregistry.New(ociregistry.Config{Dir: dir, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "dir", dir)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// In-flight pushes get a few seconds to finish their current request.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
