package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// env is shared by the tests of this package: one control cluster, two
// process-runtime targets, the S3 server of the data plane and one
// propeller. Each test uses its own
// namespace.
var env *harness.Env

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rotor-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env, err = harness.Start(context.Background(), dir, harness.Options{Targets: 2, Runtime: localcluster.RuntimeProcess, Replicas: 1, DataPlane: true,
		// The raw-data sweeper every second, with no grace, so that
		// TestSweeperDeletesOnlyWhatItMay sees it act.
		PropellerArgs: []string{"--raw-data-sweep-interval=1s", "--raw-data-sweep-grace=0s"}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "start e2e environment (logs in %s): %v\n", filepath.Join(dir, "logs"), err)
		os.Exit(1)
	}
	fmt.Printf("e2e environment ready in %s (logs in %s)\n", env.Started.Round(time.Millisecond), filepath.Join(dir, "logs"))
	code := m.Run()
	env.Stop()
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Printf("e2e failed: component logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	os.Exit(code)
}

var nsSeq atomic.Int64

// namespace creates a fresh tenant namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("t-%d", nsSeq.Add(1))
	if err := env.CreateNamespaces(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// submit creates a Workflow from YAML in ns, bypassing CLI validation so
// the engine's own checks are exercised too.
func submit(t *testing.T, ns, src string) *v1alpha1.Workflow {
	t.Helper()
	wf := &v1alpha1.Workflow{}
	if err := manifest.Unmarshal([]byte(src), wf); err != nil {
		t.Fatalf("parse workflow: %v", err)
	}
	wf.Namespace = ns
	created, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(context.Background(), wf, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create workflow: %v", err)
	}
	return created
}

// waitDone waits until the workflow reaches a terminal phase.
func waitDone(t *testing.T, wf *v1alpha1.Workflow, timeout time.Duration) *v1alpha1.Workflow {
	t.Helper()
	return env.WaitWorkflow(t, wf, timeout, harness.Ended)
}
