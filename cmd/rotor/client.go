package main

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
)

type globals struct {
	kubeconfig string
	namespace  string
}

// DevKubeconfig is where rotor dev up leaves the control cluster's
// kubeconfig, so rotor works without flags next to a sandbox.
const devKubeconfig = ".rotor/kubeconfig"

func (g *globals) loader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	switch {
	case g.kubeconfig != "":
		rules.ExplicitPath = g.kubeconfig
	case os.Getenv("KUBECONFIG") == "":
		if _, err := os.Stat(devKubeconfig); err == nil {
			rules.ExplicitPath = devKubeconfig
		}
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
}

func (g *globals) restConfig() (*rest.Config, error) {
	cfg, err := g.loader().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no usable kubeconfig (%w): pass --kubeconfig, set KUBECONFIG, or start a sandbox with 'rotor dev up'", err)
	}
	cfg.UserAgent = "rotor-cli"
	return cfg, nil
}

func (g *globals) client() (versioned.Interface, error) {
	cfg, err := g.restConfig()
	if err != nil {
		return nil, err
	}
	return versioned.NewForConfig(cfg)
}

func (g *globals) ns() string {
	if g.namespace != "" {
		return g.namespace
	}
	if ns, _, err := g.loader().Namespace(); err == nil && ns != "" {
		return ns
	}
	return "default"
}
