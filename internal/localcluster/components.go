package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rotor-dev/rotor/internal/etcdroles"
)

func (e *Env) startEtcd(ctx context.Context) error {
	client, err := freePort()
	if err != nil {
		return err
	}
	peer, err := freePort()
	if err != nil {
		return err
	}
	cu := fmt.Sprintf("http://127.0.0.1:%d", client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	var tlsArgs []string
	var clientTLS *tls.Config
	if e.opts.EtcdTLS {
		if tlsArgs, clientTLS, err = e.etcdTLS(); err != nil {
			return err
		}
		cu = fmt.Sprintf("https://127.0.0.1:%d", client)
	}
	p, err := startProcess("etcd", filepath.Join(e.opts.BinDir, "etcd"), append([]string{
		"--name=rotor", "--data-dir=" + filepath.Join(e.Dir, "data", "etcd"),
		"--listen-client-urls=" + cu, "--advertise-client-urls=" + cu,
		"--listen-peer-urls=" + pu, "--initial-advertise-peer-urls=" + pu,
		"--initial-cluster=rotor=" + pu,
		// A sandbox loses nothing that matters on a crash; fsync would
		// dominate start-up and every write on a slow disk.
		"--unsafe-no-fsync", "--quota-backend-bytes=8589934592",
		"--log-level=warn",
	}, tlsArgs...), nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(p)
	e.EtcdEndpoint = cu
	if err := waitTLS(ctx, p, cu+"/health", clientTLS, "", 30*time.Second); err != nil {
		return err
	}
	if e.opts.EtcdAuth {
		return e.etcdAuth(ctx)
	}
	return nil
}

// etcdAuth gives the components their etcd users and roles, as a
// platform team does with rotor etcd roles --apply --enable-auth, and
// turns auth on.
func (e *Env) etcdAuth(ctx context.Context) error {
	roles, err := etcdroles.Plan(etcdroles.Layout{ShardPrefix: ShardPrefix, CachePrefix: "/rotor/cache/", CallsPrefix: "/rotor/calls/"})
	if err != nil {
		return err
	}
	c, err := e.etcdFlags("").NewQuiet()
	if err != nil {
		return err
	}
	defer c.Close()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := etcdroles.Apply(actx, c, roles, etcdroles.Options{EnableAuth: true}); err != nil {
		return fmt.Errorf("etcd auth: %w", err)
	}
	return nil
}

// etcdTLS issues etcd's serving certificate and the client certificate
// of its root (used by the apiservers and the tests, and by Rotor unless
// Options.EtcdAuth gives it its own), and returns etcd's TLS flags and a
// client configuration for its health check.
func (e *Env) etcdTLS() ([]string, *tls.Config, error) {
	dir := filepath.Join(e.Dir, "pki")
	srvCert, srvKey, err := e.pki.issue(dir, "etcd-server", "etcd", true)
	if err != nil {
		return nil, nil, err
	}
	if e.EtcdCertFile, e.EtcdKeyFile, err = e.pki.issue(dir, "etcd-client", etcdroles.Root, false); err != nil {
		return nil, nil, err
	}
	if e.opts.EtcdAuth {
		e.EtcdUsers = map[string]EtcdCert{}
		for _, u := range []string{etcdroles.Manager, etcdroles.Propeller} {
			var c EtcdCert
			if c.CertFile, c.KeyFile, err = e.pki.issue(dir, "etcd-"+u, u, false); err != nil {
				return nil, nil, err
			}
			e.EtcdUsers[u] = c
		}
	}
	e.EtcdCAFile = e.pki.CAFile
	cert, err := tls.LoadX509KeyPair(e.EtcdCertFile, e.EtcdKeyFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CAPEM)
	args := []string{"--cert-file=" + srvCert, "--key-file=" + srvKey, "--trusted-ca-file=" + e.pki.CAFile, "--client-cert-auth"}
	return args, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

func (e *Env) startAPIServers(ctx context.Context) error {
	e.Control = ClusterInfo{Name: "control", EtcdPrefix: "/rotor-control"}
	if e.opts.AuditLog {
		e.Control.AuditLog = filepath.Join(e.Dir, "logs", "control-audit.jsonl")
	}
	for i := 1; i <= e.opts.Targets; i++ {
		name := "target-" + strconv.Itoa(i)
		t := ClusterInfo{Name: name, EtcdPrefix: "/rotor-" + name, Runtime: e.opts.Runtime}
		if e.opts.TargetAuditLog {
			t.AuditLog = filepath.Join(e.Dir, "logs", name+"-audit.jsonl")
		}
		e.Targets = append(e.Targets, t)
	}
	var g errgroup.Group
	g.Go(func() error { return e.startAPIServer(ctx, &e.Control) })
	for i := range e.Targets {
		g.Go(func() error { return e.startAPIServer(ctx, &e.Targets[i]) })
	}
	return g.Wait()
}

func (e *Env) startAPIServer(ctx context.Context, c *ClusterInfo) error {
	// A restart keeps the address, so kubeconfigs and Secrets stay valid.
	var port int
	if c.Server != "" {
		u, err := url.Parse(c.Server)
		if err != nil {
			return err
		}
		if port, err = strconv.Atoi(u.Port()); err != nil {
			return fmt.Errorf("server %s: %w", c.Server, err)
		}
	} else {
		p, err := freePort()
		if err != nil {
			return err
		}
		port = p
		c.Server = fmt.Sprintf("https://127.0.0.1:%d", port)
	}
	args := []string{
		"--etcd-servers=" + e.EtcdEndpoint, "--etcd-prefix=" + c.EtcdPrefix,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + e.pki.CertFile, "--tls-private-key-file=" + e.pki.KeyFile,
		"--client-ca-file=" + e.pki.CAFile,
		"--token-auth-file=" + filepath.Join(e.Dir, "pki", "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + e.pki.SAPubFile,
		"--service-account-signing-key-file=" + e.pki.SAKeyFile,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--disable-admission-plugins=" + e.disabledAdmission(c),
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	if c == &e.Control && e.runsPods() {
		// No kube-proxy here: a Service's cluster IP leads nowhere, so the
		// apiserver calls webhooks (Rotor's admission webhook) at the
		// Service's endpoint addresses, the pods' own.
		args = append(args, "--enable-aggregator-routing=true")
	}
	if e.EtcdCertFile != "" {
		args = append(args, "--etcd-cafile="+e.EtcdCAFile, "--etcd-certfile="+e.EtcdCertFile, "--etcd-keyfile="+e.EtcdKeyFile)
	}
	if c.AuditLog != "" {
		policy := filepath.Join(e.Dir, "pki", c.Name+"-audit-policy.yaml")
		if err := writeAuditPolicy(policy, c != &e.Control, e.runsPods()); err != nil {
			return err
		}
		args = append(args, "--audit-policy-file="+policy, "--audit-log-path="+c.AuditLog,
			"--audit-log-format=json", "--audit-log-mode=batch", "--audit-log-batch-max-wait=1s")
	}
	p, err := startProcess("kube-apiserver-"+c.Name, filepath.Join(e.opts.BinDir, "kube-apiserver"), args, nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(p)
	admin := user{Name: "rotor-admin", Token: e.Tokens["rotor-admin"]}
	data, err := kubeconfig(c.Name, c.Server, e.CAPEM, admin)
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(e.Dir, "kubeconfigs", c.Name+".yaml")
	if err := writeFile(c.Kubeconfig, data); err != nil {
		return err
	}
	return waitHTTP(ctx, p, c.Server+"/readyz", e.CAPEM, admin.Token, 90*time.Second)
}

// disabledAdmission lists the admission plugins cluster c runs without.
// Without kube-controller-manager the ServiceAccount plugin would reject
// pods until a token controller made the default account; so it is on
// only on a control cluster that runs pods (and has one).
// TaintNodesByCondition is off everywhere: it would leave a not-ready
// taint that only the node lifecycle controller removes, and none runs.
func (e *Env) disabledAdmission(c *ClusterInfo) string {
	if c == &e.Control && e.runsPods() {
		return "TaintNodesByCondition"
	}
	return "ServiceAccount,TaintNodesByCondition"
}

// KillAPIServer SIGKILLs the kube-apiserver of a target cluster (a lost
// cluster: its scheduler and nodes keep running, unable to reach it).
func (e *Env) KillAPIServer(target string) error {
	p, err := e.Process("kube-apiserver-" + target)
	if err != nil {
		return err
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// RestartAPIServer starts a target's kube-apiserver again on its old
// address and waits until it is ready.
func (e *Env) RestartAPIServer(ctx context.Context, target string) error {
	for i := range e.Targets {
		if e.Targets[i].Name == target {
			return e.startAPIServer(ctx, &e.Targets[i])
		}
	}
	return fmt.Errorf("no target %s", target)
}

// waitHTTP polls url until it answers 200, the process exits, or the
// timeout passes; errors quote the end of the component's log.
func waitHTTP(ctx context.Context, p *Process, url string, caPEM []byte, token string, timeout time.Duration) error {
	var tc *tls.Config
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tc = &tls.Config{RootCAs: pool}
	}
	return waitTLS(ctx, p, url, tc, token, timeout)
}

// waitTLS is waitHTTP with a TLS client configuration (nil: plain HTTP or
// the system's roots).
func waitTLS(ctx context.Context, p *Process, url string, tc *tls.Config, token string, timeout time.Duration) error {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if exited, werr := p.Exited(); exited {
			return fmt.Errorf("%s exited while starting (%v); log %s ends:\n%s", p.Name, werr, p.Log, tail(p.Log, 2000))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after %s; log %s ends:\n%s", p.Name, url, timeout, p.Log, tail(p.Log, 2000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
