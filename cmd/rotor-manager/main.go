// Command rotor-manager is the shard manager: run two or more; one leads
// (etcd election), publishes the shard map and moves partitions between
// replicas with the handoff protocol. The others stand by.
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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/manager"
	"github.com/rotor-dev/rotor/manager/ring"
)

type config struct {
	etcd       string
	name       string
	prefix     string
	partitions int
	loadFactor float64
	sessionTTL time.Duration
	listen     string
}

func main() {
	var c config
	flag.StringVar(&c.etcd, "etcd-endpoints", "", "comma-separated etcd client URLs")
	flag.StringVar(&c.name, "name", "", "this instance's name in the election (default: the host name)")
	flag.StringVar(&c.prefix, "shard-prefix", "/rotor", "etcd prefix of the shard map and membership")
	flag.IntVar(&c.partitions, "partitions", 256, "number of partitions; fixed at install")
	flag.Float64Var(&c.loadFactor, "load-factor", 1.25, "a replica holds at most this multiple of its fair share of partitions")
	flag.DurationVar(&c.sessionTTL, "session-ttl", 10*time.Second, "election session TTL: how long a dead leader blocks the standby")
	flag.StringVar(&c.listen, "listen", "127.0.0.1:9091", "address for /metrics and /healthz")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "rotor-manager:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("rotor-manager failed", "err", err)
		os.Exit(1)
	}
}

func (c *config) validate() error {
	if c.etcd == "" {
		return errors.New("--etcd-endpoints is required")
	}
	if c.partitions < 1 {
		return fmt.Errorf("--partitions must be at least 1, got %d", c.partitions)
	}
	if c.loadFactor <= 1 {
		return fmt.Errorf("--load-factor must be above 1, got %g", c.loadFactor)
	}
	if c.sessionTTL < 2*time.Second {
		return fmt.Errorf("--session-ttl must be at least 2s, got %s", c.sessionTTL)
	}
	if c.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--name not given and no host name: %w", err)
		}
		c.name = h
	}
	return nil
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	etcd, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(c.etcd, ","), DialTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("connect to etcd %s: %w", c.etcd, err)
	}
	defer etcd.Close()
	l, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	log.Info("rotor-manager starting", "name", c.name, "partitions", c.partitions, "listen", l.Addr().String())
	return manager.New(etcd, manager.Config{
		Name: c.name, Prefix: c.prefix, SessionTTL: c.sessionTTL, Logger: log,
		Ring: ring.Config{Partitions: c.partitions, LoadFactor: c.loadFactor},
	}).Run(ctx)
}
