package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/transport"

	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

// adminFlags locate a rotor-manager's admin API.
type adminFlags struct {
	addr, ca, serverName string
}

func (f *adminFlags) bind(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.addr, "manager", "", "admin API address of a rotor-manager (default: the sandbox's)")
	cmd.PersistentFlags().StringVar(&f.ca, "tls-ca", "", "CA certificate of the manager's admin TLS (default: the sandbox's CA)")
	cmd.PersistentFlags().StringVar(&f.serverName, "tls-server-name", "", "name to verify the manager's certificate against, when it does not name the address dialled (a pod IP: rotor-manager-admin.rotor-system.svc)")
}

// dialAdmin connects to the admin API as the kubeconfig's user: its client
// certificate in the TLS handshake, or its bearer token (including one an
// exec plugin gives) on every call. The manager checks either with the
// control cluster and asks RBAC, so no Rotor-specific credential exists.
// With no --manager, the sandbox's managers are used, with the sandbox CA.
func dialAdmin(g *globals, f adminFlags) (adminpb.AdminClient, func(), error) {
	addr, caPEM := f.addr, []byte(nil)
	if f.ca != "" {
		b, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		caPEM = b
	}
	if env, err := localcluster.Load(".rotor"); err == nil && (addr == "" || caPEM == nil) {
		if addr == "" {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			addrs, err := env.ManagerAdminAddrs(ctx)
			cancel()
			if err != nil {
				return nil, nil, err
			}
			if len(addrs) > 0 {
				addr = addrs[0]
			}
		}
		if caPEM == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ca, name, err := env.ManagerAdminTLS(ctx)
			cancel()
			if err != nil {
				return nil, nil, err
			}
			caPEM = ca
			if f.serverName == "" {
				f.serverName = name
			}
		}
	}
	if addr == "" {
		return nil, nil, fmt.Errorf("no manager address: pass --manager HOST:PORT (a sharded sandbox is started with rotor dev up --replicas 2 or more)")
	}
	cfg, err := g.restConfig()
	if err != nil {
		return nil, nil, err
	}
	tc, err := cfg.TransportConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig credentials: %w", err)
	}
	var creds credentials.TransportCredentials
	secure := caPEM != nil
	if secure {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, nil, fmt.Errorf("the manager's CA (--tls-ca) holds no PEM certificate")
		}
		// The kubeconfig's client certificate (file, data or exec plugin),
		// presented to the manager instead of the apiserver.
		kt, err := transport.TLSConfigFor(tc)
		if err != nil {
			return nil, nil, fmt.Errorf("kubeconfig client certificate: %w", err)
		}
		t := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: f.serverName}
		if kt != nil {
			t.Certificates, t.GetClientCertificate = kt.Certificates, kt.GetClientCertificate
		}
		creds = credentials.NewTLS(t)
	} else {
		if host, _, _ := net.SplitHostPort(addr); host != "localhost" && !net.ParseIP(host).IsLoopback() {
			return nil, nil, fmt.Errorf("%s is not on loopback: pass --tls-ca to talk TLS", addr)
		}
		creds = insecure.NewCredentials()
	}
	token, err := newKubeToken(tc, secure)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(token))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the manager at %s: %w", addr, err)
	}
	return adminpb.NewAdminClient(conn), func() { conn.Close() }, nil
}

// kubeToken sends the kubeconfig's bearer token the way client-go would
// send it to the apiserver: its auth round tripper, built once, is asked
// at each call, so a rotated token file or an exec plugin's renewed token
// is used. A kubeconfig with only a client certificate sends none.
type kubeToken struct {
	auth   http.RoundTripper
	secure bool
}

// newKubeToken wraps a round tripper that only records the Authorization
// header client-go's wrappers set.
func newKubeToken(config *transport.Config, secure bool) (*kubeToken, error) {
	rt, err := transport.HTTPWrappersForConfig(config, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		h := http.Header{}
		if v := r.Header.Get("Authorization"); v != "" {
			h.Set("Authorization", v)
		}
		return &http.Response{StatusCode: http.StatusOK, Header: h, Body: http.NoBody, Request: r}, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("kubeconfig credentials: %w", err)
	}
	return &kubeToken{auth: rt, secure: secure}, nil
}

func (k *kubeToken) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://rotor-manager/", nil)
	resp, err := k.auth.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig credentials: %w", err)
	}
	if v := resp.Header.Get("Authorization"); v != "" {
		return map[string]string{"authorization": v}, nil
	}
	return nil, nil
}

// RequireTransportSecurity is false only for the plaintext loopback
// connection dialAdmin allows.
func (k *kubeToken) RequireTransportSecurity() bool { return k.secure }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
