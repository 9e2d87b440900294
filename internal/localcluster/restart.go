package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"syscall"
	"time"
)

// KillEtcd SIGKILLs the sandbox's etcd and waits for it to exit.
func (e *Env) KillEtcd() error {
	p, err := e.Process("etcd")
	if err != nil {
		return err
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill etcd: %w", err)
	}
	<-p.done
	return nil
}

// RestartEtcd starts etcd again with the arguments of its last run: the
// same client and peer ports and the same data directory, so every client
// finds it where it was and every key is still there (bar the writes a
// crash under --unsafe-no-fsync lost). It waits until etcd is healthy.
func (e *Env) RestartEtcd(ctx context.Context) error {
	old, err := e.Process("etcd")
	if err != nil {
		return err
	}
	if exited, _ := old.Exited(); !exited {
		return fmt.Errorf("restart etcd: pid %d is still running: kill it first", old.PID)
	}
	if old.cmd == nil {
		return fmt.Errorf("restart etcd: not started by this process")
	}
	p, err := startProcess("etcd", old.cmd.Path, old.cmd.Args[1:], nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(p)
	tc, err := e.etcdHealthTLS()
	if err != nil {
		return err
	}
	return waitTLS(ctx, p, e.EtcdEndpoint+"/health", tc, "", 60*time.Second)
}

// KillControlAPIServer SIGKILLs the control cluster's kube-apiserver.
func (e *Env) KillControlAPIServer() error { return e.KillAPIServer(e.Control.Name) }

// RestartControlAPIServer starts the control cluster's kube-apiserver
// again on its old address and waits until it is ready.
func (e *Env) RestartControlAPIServer(ctx context.Context) error {
	return e.startAPIServer(ctx, &e.Control)
}

// etcdHealthTLS is the client configuration of etcd's health check: nil
// for plain HTTP, else the client certificate etcdTLS issued.
func (e *Env) etcdHealthTLS() (*tls.Config, error) {
	if e.EtcdCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(e.EtcdCertFile, e.EtcdKeyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CAPEM)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

// RestartKwok stops a kwok target's kwok and starts it again with the same
// arguments. kwok does not retry a stage whose patch failed (its
// apiserver or etcd was down at that moment): the pod stays Pending or
// Running for ever, where a kubelet would resync. A fresh kwok lists
// every pod and plays their stages again, which is what a resync does.
func (e *Env) RestartKwok(target string) error {
	old, err := e.Process("kwok-" + target)
	if err != nil {
		return err
	}
	if old.cmd == nil {
		return fmt.Errorf("restart kwok of %s: not started by this process", target)
	}
	old.Stop(2 * time.Second)
	p, err := startProcess(old.Name, old.cmd.Path, old.cmd.Args[1:], nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(p)
	return nil
}
