// Package chart tests Rotor installed the way a platform team installs
// it: charts/rotor-target in each target, charts/rotor in the control
// cluster, from Rotor's OCI images in the sandbox registry, its pods run by
// node agents with their ServiceAccount tokens, Deployments and
// StatefulSets driven by a real kube-controller-manager. The control
// apiserver's audit log says who did what.
package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// env is shared by the tests of this package, which run in order: the
// install, the audit of its permissions, the upgrade, autoscaling.
var env *harness.Env

// installTook is how long the environment took from nothing to every
// Rotor pod Ready (clusters, controllers, image push, helm, probes).
var installTook time.Duration

const (
	replicas      = 3
	maxReplicas   = 5
	perReplica    = 100
	partitions    = 64
	scaleDownWait = "10s"
)

// chartValues install three sharded replicas that the manager scales
// between 3 and 5 at 100 active workflows each.
func chartValues() map[string]any {
	return map[string]any{
		"partitions": partitions,
		"propeller": map[string]any{
			"replicas": replicas, "drainTimeout": "30s",
			"autoscaling": map[string]any{
				"enabled": true, "minReplicas": replicas, "maxReplicas": maxReplicas,
				"targetWorkflowsPerReplica": perReplica, "scaleDownWindow": scaleDownWait,
			},
			// Small requests: five replicas and two managers share two
			// cores with the whole sandbox.
			"resources": map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "32Mi"}},
		},
		"manager": map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "32Mi"}}},
		// Scraping behind TokenReview and SubjectAccessReview, probes
		// over HTTPS (checkMetricsAuth).
		"metrics": map[string]any{"auth": true},
	}
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rotor-e2e-chart-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	start := time.Now()
	env, err = harness.Start(context.Background(), dir, harness.Options{
		Targets: 2, Runtime: localcluster.RuntimeProcess, Chart: true, ChartValues: chartValues(), ChartPropellers: replicas,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "install Rotor's chart in the sandbox (logs in %s): %v\n", filepath.Join(dir, "logs"), err)
		os.Exit(1)
	}
	installTook = time.Since(start)
	fmt.Printf("chart environment ready in %s (logs in %s)\n", installTook.Round(time.Millisecond), filepath.Join(dir, "logs"))
	code := m.Run()
	env.Stop()
	if code == 0 && os.Getenv("ROTOR_E2E_KEEP") == "" {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Printf("component logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	os.Exit(code)
}
