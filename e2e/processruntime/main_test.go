// Package processruntime tests the node agent's process runtime against a
// real API server: native sidecars (init containers with restartPolicy
// Always) and emptyDir volumes shared by a pod's containers, which the
// data agent needs (an init container downloads inputs, a sidecar uploads
// outputs once the main container exits).
package processruntime

import (
	"os"
	"testing"

	"github.com/rotor-dev/rotor/internal/nodeagent/nsexec"
)

// TestMain lets this test binary be the agent's mount-namespace helper:
// the agent re-executes its own binary with nsexec.Subcommand for
// containers with volumes.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == nsexec.Subcommand {
		os.Exit(nsexec.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}
