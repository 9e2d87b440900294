// Command podprog is the container program of the image runtime's e2e
// test: it reports what it finds inside its container (identity, token,
// read-only root, in-cluster access to its own pod) on stdout, serves
// /healthz and /readyz on $POD_IP:8080 (ready once it has read its pod
// through rest.InClusterConfig) and exits 0 after a short drain on
// SIGTERM (after $DRAIN_MS). "podprog crash" exits 3 at once; with
// $HEALTHZ_FAIL_AFTER_MS set, /healthz fails after that long.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "crash" {
		fmt.Println("podprog: crashing with exit code 3")
		os.Exit(3)
	}
	host, _ := os.Hostname()
	fmt.Printf("podprog: started uid=%d gid=%d hostname=%s podIP=%s\n", os.Getuid(), os.Getgid(), host, os.Getenv("POD_IP"))
	if tok, err := os.ReadFile(saDir + "/token"); err == nil {
		fmt.Printf("podprog: token found (%d bytes)\n", len(tok))
	} else {
		fmt.Printf("podprog: token missing: %v\n", err)
	}
	err := os.WriteFile("/rootfs-probe", nil, 0o644)
	fmt.Printf("podprog: rootfs read-only: %v\n", errors.Is(err, syscall.EROFS))
	fmt.Printf("podprog: scratch writable: %v\n", os.WriteFile("/scratch/probe", []byte("x"), 0o644) == nil)
	var ready atomic.Bool
	go readSelf(&ready)
	serve(&ready)
}

// readSelf gets this pod through in-cluster config until it succeeds.
func readSelf(ready *atomic.Bool) {
	for {
		if err := getSelf(); err != nil {
			fmt.Printf("podprog: self: %v\n", err)
			time.Sleep(time.Second)
			continue
		}
		ready.Store(true)
		return
	}
}

func getSelf() error {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	cs, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns, err := os.ReadFile(saDir + "/namespace")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := cs.Pods(string(ns)).Get(ctx, os.Getenv("POD_NAME"), metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("podprog: self: got pod %s/%s uid %s via %s\n", p.Namespace, p.Name, p.UID, cfg.Host)
	return nil
}

func serve(ready *atomic.Bool) {
	mux := http.NewServeMux()
	start := time.Now()
	failAfter, _ := strconv.Atoi(os.Getenv("HEALTHZ_FAIL_AFTER_MS"))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if failAfter > 0 && time.Since(start) > time.Duration(failAfter)*time.Millisecond {
			http.Error(w, "told to fail", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not read own pod yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("POD_IP"), "8080"))
	if err != nil {
		fmt.Printf("podprog: listen: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("podprog: listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	drain, _ := strconv.Atoi(os.Getenv("DRAIN_MS"))
	fmt.Printf("podprog: got SIGTERM, draining for %dms\n", drain)
	time.Sleep(time.Duration(drain) * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	fmt.Println("podprog: clean exit")
	os.Exit(0)
}
