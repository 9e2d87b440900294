package imageruntime

import (
	"os"
	"testing"

	"github.com/rotor-dev/rotor/internal/nodeagent/nsexec"
)

// TestMain lets this test binary be the agent's container helper: the
// agent re-executes its own binary with nsexec.Subcommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == nsexec.Subcommand {
		os.Exit(nsexec.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}
