// Command rotor-nodeagent is the "process" node runtime of the Rotor
// sandbox: it registers a Node and runs the pods bound to it as local
// processes. A development runtime only; see package nodeagent.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotor-dev/rotor/internal/nodeagent"
)

func main() {
	var kubeconfig, nodeName, workDir string
	flag.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the target cluster")
	flag.StringVar(&nodeName, "node-name", "", "name of the Node to register")
	flag.StringVar(&workDir, "work-dir", "", "folder for each pod's outputs and logs")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(kubeconfig, nodeName, workDir, log); err != nil {
		log.Error("rotor-nodeagent failed", "err", err)
		os.Exit(1)
	}
}

func run(kubeconfig, nodeName, workDir string, log *slog.Logger) error {
	if kubeconfig == "" || nodeName == "" || workDir == "" {
		return fmt.Errorf("--kubeconfig, --node-name and --work-dir are all required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return nodeagent.New(cs, nodeagent.Config{NodeName: nodeName, WorkDir: workDir, Logger: log}).Run(ctx)
}
