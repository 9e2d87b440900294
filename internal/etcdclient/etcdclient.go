// Package etcdclient is how every Rotor process connects to etcd: one set
// of flags (endpoints and, for TLS, a CA and a client certificate) and one
// constructor, so the manager, the replicas and the CLI agree on them.
package etcdclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// OpTimeout bounds one etcd operation a reconcile round makes on the side
// (the task cache, the http call journal): etcd answers in milliseconds
// when it answers at all, and a round's context ends only at the
// membership lease deadline. A replica cut off from etcd still reaches
// the apiserver; an operation that waited out the lease left the round no
// time for its status write, and the next owner redid the round (the
// chaos soak found an http call made twice that way).
const OpTimeout = time.Second

// Bound is ctx limited to OpTimeout.
func Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, OpTimeout)
}

// Flags are the etcd connection settings of one process.
type Flags struct {
	// Endpoints is a comma-separated list of client URLs.
	Endpoints string
	// CAFile verifies etcd's serving certificate; CertFile and KeyFile
	// are this process's client certificate (etcd --client-cert-auth).
	CAFile, CertFile, KeyFile string
}

// Bind registers --etcd-endpoints (with its usage text) and the TLS flags.
func (f *Flags) Bind(fs *flag.FlagSet, usage string) {
	fs.StringVar(&f.Endpoints, "etcd-endpoints", "", usage)
	fs.StringVar(&f.CAFile, "etcd-ca-file", "", "CA bundle that signed etcd's serving certificate (https endpoints)")
	fs.StringVar(&f.CertFile, "etcd-cert-file", "", "client certificate for etcd (with --etcd-key-file)")
	fs.StringVar(&f.KeyFile, "etcd-key-file", "", "client key for etcd (with --etcd-cert-file)")
}

// Args are the command-line flags that give another process these
// settings (empty ones left out).
func (f *Flags) Args() []string {
	args := []string{"--etcd-endpoints=" + f.Endpoints}
	for _, a := range [][2]string{{"etcd-ca-file", f.CAFile}, {"etcd-cert-file", f.CertFile}, {"etcd-key-file", f.KeyFile}} {
		if a[1] != "" {
			args = append(args, "--"+a[0]+"="+a[1])
		}
	}
	return args
}

// Validate checks the flags agree with each other.
func (f *Flags) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("give both --etcd-cert-file and --etcd-key-file, or neither")
	}
	if f.Endpoints == "" {
		return nil
	}
	tlsWanted := f.CAFile != "" || f.CertFile != ""
	for _, ep := range f.endpoints() {
		switch {
		case strings.HasPrefix(ep, "https://"):
		case strings.HasPrefix(ep, "http://"):
			if tlsWanted {
				return fmt.Errorf("etcd endpoint %s is plain http but TLS files are given: use https://", ep)
			}
		default:
			return fmt.Errorf("etcd endpoint %q: want http:// or https://", ep)
		}
	}
	return nil
}

func (f *Flags) endpoints() []string { return strings.Split(f.Endpoints, ",") }

// Config returns the client configuration: TLS when any endpoint is
// https, with the CA and client certificate read now (a bad file fails
// at start-up, not at the first request).
func (f *Flags) Config() (clientv3.Config, error) {
	cfg := clientv3.Config{Endpoints: f.endpoints(), DialTimeout: 5 * time.Second}
	if !strings.Contains(f.Endpoints, "https://") {
		return cfg, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return cfg, fmt.Errorf("read --etcd-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("--etcd-ca-file %s holds no PEM certificate", f.CAFile)
		}
		tc.RootCAs = pool
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return cfg, fmt.Errorf("load etcd client certificate %s: %w", f.CertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	cfg.TLS = tc
	return cfg, nil
}

// New connects to etcd.
func (f *Flags) New() (*clientv3.Client, error) { return f.new(nil) }

// NewQuiet connects to etcd with the client's own logging off, for
// one-shot administration (rotor etcd roles, the sandbox's set-up) whose
// expected "not found" answers the client would log as failed attempts.
func (f *Flags) NewQuiet() (*clientv3.Client, error) { return f.new(zap.NewNop()) }

func (f *Flags) new(logger *zap.Logger) (*clientv3.Client, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	cfg.Logger = logger
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", f.Endpoints, err)
	}
	return c, nil
}
