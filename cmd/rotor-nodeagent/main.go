// Command rotor-nodeagent is the node runtime of the Rotor sandbox: it
// registers a Node and runs the pods bound to it, as local processes
// ("process" runtime, the default) or from their OCI images with volumes,
// probes, restarts and pod IPs (--pull-images, the "image" runtime). A
// development runtime only; see package nodeagent.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotor-dev/rotor/internal/nodeagent"
	"github.com/rotor-dev/rotor/internal/nodeagent/nsexec"
)

type flags struct {
	kubeconfig, nodeName, workDir string
	pullImages                    bool
	image                         nodeagent.ImageConfig
	insecure                      string
}

func main() {
	// The image runtime re-executes this binary to set up each container;
	// that must happen before anything else runs.
	if len(os.Args) > 1 && os.Args[1] == nsexec.Subcommand {
		os.Exit(nsexec.Main(os.Args[2:]))
	}
	var f flags
	flag.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster")
	flag.StringVar(&f.nodeName, "node-name", "", "name of the Node to register")
	flag.StringVar(&f.workDir, "work-dir", "", "folder for each pod's outputs, logs and volumes")
	flag.BoolVar(&f.pullImages, "pull-images", false, "run pods from their images (the image runtime) instead of running container commands as local processes")
	flag.StringVar(&f.image.ImageDir, "image-dir", "", "image cache, may be shared by agents (default <work-dir>/images)")
	flag.StringVar(&f.insecure, "insecure-registries", "", "comma-separated registries (host[:port]) reached over plain HTTP; loopback ones always are")
	flag.StringVar(&f.image.PodCIDR, "pod-cidr", "127.1.0.0/16", "loopback range of pod IPs; give each node on a machine its own")
	flag.StringVar(&f.image.KubeServiceHost, "kube-service-host", "", "KUBERNETES_SERVICE_HOST for pods (default: the kubeconfig's server host)")
	flag.StringVar(&f.image.KubeServicePort, "kube-service-port", "", "KUBERNETES_SERVICE_PORT for pods (default: the kubeconfig's server port)")
	flag.DurationVar(&f.image.ShutdownGrace, "shutdown-grace", 10*time.Second, "longest grace period pods get when the agent stops")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(f, log); err != nil {
		log.Error("rotor-nodeagent failed", "err", err)
		os.Exit(1)
	}
}

func run(f flags, log *slog.Logger) error {
	if f.kubeconfig == "" || f.nodeName == "" || f.workDir == "" {
		return fmt.Errorf("--kubeconfig, --node-name and --work-dir are all required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ac := nodeagent.Config{NodeName: f.nodeName, WorkDir: f.workDir, Logger: log}
	if f.pullImages {
		if ac.Image, err = imageConfig(f, cfg); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return nodeagent.New(cs, ac).Run(ctx)
}

// imageConfig completes the image runtime's flags, taking the API server
// address pods see from the kubeconfig unless given.
func imageConfig(f flags, cfg *rest.Config) (*nodeagent.ImageConfig, error) {
	ic := f.image
	if f.insecure != "" {
		ic.InsecureRegistries = strings.Split(f.insecure, ",")
	}
	if ic.KubeServiceHost == "" || ic.KubeServicePort == "" {
		u, err := url.Parse(cfg.Host)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig server %q: %w", cfg.Host, err)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			host, port = u.Host, "443"
		}
		ic.KubeServiceHost = firstOf(ic.KubeServiceHost, host)
		ic.KubeServicePort = firstOf(ic.KubeServicePort, port)
	}
	return &ic, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
