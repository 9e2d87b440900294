package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/internal/certfile"
	"github.com/rotor-dev/rotor/internal/kubeauth"
	"github.com/rotor-dev/rotor/manager"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

// serveAdmin serves the gRPC admin API. Every call is authenticated (a
// client certificate signed by the control cluster's client CA, or a
// bearer token checked with a TokenReview) and authorized with a
// SubjectAccessReview (manager.AdminRules), so the user's own kubeconfig
// and RBAC decide. TLS is required off loopback (validate); the serving
// certificate and the client CA file are read again when they change.
func serveAdmin(ctx context.Context, c config, etcd *clientv3.Client, log *slog.Logger) (func(), error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("admin API: load the control cluster's kubeconfig, needed to authenticate and authorize callers: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	guard := &kubeauth.Guard{Reviewer: kubeauth.APIServer{Kube: kube}, Clock: clock.RealClock{}, Logger: log}
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(guard.UnaryInterceptor(manager.AdminRules)),
		grpc.StreamInterceptor(guard.StreamInterceptor(manager.AdminRules)),
	}
	clientCA := "none (bearer tokens only)"
	if c.tlsCert != "" {
		pair, err := certfile.Load(c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("admin API: %w", err)
		}
		cas := &clientCAs{file: c.adminClientCA, kube: kube, log: log}
		if err := cas.load(ctx); err != nil {
			if c.adminClientCA != "" {
				return nil, fmt.Errorf("admin API: %w", err)
			}
			// Not fatal: bearer tokens still work, and the CA is asked
			// for again on later handshakes.
			log.Warn("admin API: no client CA, so only bearer tokens authenticate", "err", err)
		}
		clientCA = cas.source()
		base := pair.ServerConfig()
		base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := base.Clone()
			cfg.GetConfigForClient = nil
			if pool := cas.pool(ctx); pool != nil {
				cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
			}
			return cfg, nil
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(base)))
	}
	admin := manager.NewAdmin(etcd, c.prefix, c.partitions)
	admin.Cache = taskcache.NewStore(etcd, c.cachePrefix)
	admin.Namespaces = func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		list, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil
		}
		out := make([]string, 0, len(list.Items))
		for _, ns := range list.Items {
			out = append(out, ns.Name)
		}
		return out
	}
	srv := grpc.NewServer(opts...)
	adminpb.RegisterAdminServer(srv, admin)
	l, err := net.Listen("tcp", c.adminListen)
	if err != nil {
		return nil, fmt.Errorf("admin API: listen on %s: %w", c.adminListen, err)
	}
	log.Info("admin API serving", "addr", l.Addr().String(), "tls", c.tlsCert != "", "clientCA", clientCA)
	go func() { _ = srv.Serve(l) }()
	return srv.Stop, nil
}

// clientCAs is the pool verifying client certificates: a file (read again
// when it changes), or the control cluster's own client CA, which the
// apiserver publishes in kube-system/extension-apiserver-authentication
// for aggregated servers to use, as Rotor does (asked again every
// refresh, so a CA rotation reaches the manager without a restart).
type clientCAs struct {
	file string
	kube kubernetes.Interface
	log  *slog.Logger

	mu      sync.Mutex
	current *x509.CertPool
	pem     []byte
	stamp   time.Time
	checked time.Time
}

const clientCARefresh = 5 * time.Minute

func (c *clientCAs) source() string {
	if c.file != "" {
		return c.file
	}
	return "kube-system/extension-apiserver-authentication"
}

func (c *clientCAs) pool(ctx context.Context) *x509.CertPool {
	c.mu.Lock()
	due := time.Since(c.checked) > clientCARefresh || (c.file != "" && c.changed())
	c.mu.Unlock()
	if due {
		if err := c.load(ctx); err != nil {
			c.log.Warn("admin API: reload client CA", "source", c.source(), "err", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

func (c *clientCAs) changed() bool {
	fi, err := os.Stat(c.file)
	return err == nil && !fi.ModTime().Equal(c.stamp)
}

func (c *clientCAs) load(ctx context.Context) error {
	// Checked now, whatever the outcome: a failing source is asked again
	// at the next refresh, not at every handshake.
	c.mu.Lock()
	c.checked = time.Now()
	c.mu.Unlock()
	var data []byte
	var stamp time.Time
	if c.file != "" {
		fi, err := os.Stat(c.file)
		if err != nil {
			return fmt.Errorf("client CA %s: %w", c.file, err)
		}
		if data, err = os.ReadFile(c.file); err != nil {
			return fmt.Errorf("client CA %s: %w", c.file, err)
		}
		stamp = fi.ModTime()
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cm, err := c.kube.CoreV1().ConfigMaps("kube-system").Get(rctx, "extension-apiserver-authentication", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read the control cluster's client CA (get configmaps in kube-system, the Role extension-apiserver-authentication-reader grants it; or pass --admin-client-ca-file): %w", err)
		}
		data = []byte(cm.Data["client-ca-file"])
		if len(data) == 0 {
			return fmt.Errorf("kube-system/extension-apiserver-authentication has no client-ca-file: the apiserver does not use client certificates; pass --admin-client-ca-file")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil && bytes.Equal(data, c.pem) {
		c.stamp = stamp
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return fmt.Errorf("client CA from %s holds no PEM certificate", c.source())
	}
	c.current, c.pem, c.stamp = pool, data, stamp
	return nil
}
