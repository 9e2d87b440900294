package endpoints

import (
	"errors"
	"flag"
	"fmt"
	"net"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/internal/certfile"
	"github.com/rotor-dev/rotor/internal/kubeauth"
)

// Flags are the command-line settings of Serve, the same in every Rotor
// process.
type Flags struct {
	Auth              bool
	CertFile, KeyFile string
	Pprof             bool
}

// Bind registers the flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.BoolVar(&f.Auth, "metrics-auth", false, "authorize callers of /metrics and /debug/pprof with a TokenReview and a SubjectAccessReview on the URL (get), served over HTTPS; needs create on tokenreviews and subjectaccessreviews")
	fs.StringVar(&f.CertFile, "metrics-cert-file", "", "serve metrics and health over HTTPS with this certificate (read again when it changes); with --metrics-auth and none given, a self-signed one")
	fs.StringVar(&f.KeyFile, "metrics-key-file", "", "key of --metrics-cert-file")
	fs.BoolVar(&f.Pprof, "pprof", false, "serve /debug/pprof on the metrics address (behind --metrics-auth when set)")
}

// Validate checks the flags alone.
func (f *Flags) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("give both --metrics-cert-file and --metrics-key-file, or neither")
	}
	return nil
}

// Options builds Serve's options for a process listening on addr; kube is
// the client that asks the apiserver (needed with Auth).
func (f *Flags) Options(addr string, kube kubernetes.Interface) (Options, error) {
	o := Options{Pprof: f.Pprof}
	switch {
	case f.CertFile != "":
		p, err := certfile.Load(f.CertFile, f.KeyFile)
		if err != nil {
			return Options{}, fmt.Errorf("--metrics-cert-file: %w", err)
		}
		o.TLS = p.ServerConfig()
	case f.Auth:
		// Bearer tokens must not cross the network in clear.
		host, _, _ := net.SplitHostPort(addr)
		cfg, err := certfile.SelfSigned(host, "localhost")
		if err != nil {
			return Options{}, err
		}
		o.TLS = cfg
	}
	if f.Auth {
		if kube == nil {
			return Options{}, errors.New("--metrics-auth needs a Kubernetes client (--kubeconfig, or in-cluster credentials)")
		}
		o.Guard = &kubeauth.Guard{Reviewer: kubeauth.APIServer{Kube: kube}, Clock: clock.RealClock{}}
	}
	return o, nil
}
