// Command rotor is Rotor's user CLI: submit and inspect workflows, and run
// the local multi-cluster sandbox (rotor dev).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code without printing usage.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	root := &cobra.Command{
		Use:           "rotor",
		Short:         "Submit and inspect Rotor workflows, and run the local sandbox",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g := &globals{}
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig of the control cluster (default: $KUBECONFIG, then .rotor/kubeconfig, then ~/.kube/config)")
	root.PersistentFlags().StringVarP(&g.namespace, "namespace", "n", "", "namespace (tenant) of the workflow (default: the kubeconfig's, else default)")
	root.AddCommand(submitCmd(g), getCmd(g), outputsCmd(g), listCmd(g), watchCmd(g), abortCmd(g), approveCmd(g, "approve"), approveCmd(g, "reject"), cacheCmd(g), relaunchCmd(g), shardsCmd(g), validateCmd(), devCmd(), clustersCmd(g), etcdCmd())
	root.AddCommand(cordonCmds(g)...)
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
