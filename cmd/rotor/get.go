package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func getCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get NAME [-o yaml|json]",
		Short: "Show a workflow: its phase, each node's attempts, and its outputs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			wf, err := c.RotorV1alpha1().Workflows(g.ns()).Get(cmd.Context(), args[0], metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get workflow %s/%s: %w", g.ns(), args[0], err)
			}
			wf.APIVersion, wf.Kind = v1alpha1.SchemeGroupVersion.String(), "Workflow"
			wf.ManagedFields = nil
			out := cmd.OutOrStdout()
			switch output {
			case "yaml":
				b, err := yaml.Marshal(wf)
				if err != nil {
					return err
				}
				_, err = out.Write(b)
				return err
			case "json":
				b, err := json.MarshalIndent(wf, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(out, string(b))
				return err
			case "":
				describe(out, wf)
				return nil
			}
			return fmt.Errorf("unknown output format %q: use yaml or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "yaml or json (default: a summary)")
	return cmd
}

func describe(out io.Writer, wf *v1alpha1.Workflow) {
	phase := wf.Status.Phase
	if phase == "" {
		phase = v1alpha1.WorkflowPending
	}
	fmt.Fprintf(out, "Workflow:  %s/%s\nPhase:     %s\n", wf.Namespace, wf.Name, phase)
	if wf.Status.Message != "" {
		fmt.Fprintf(out, "Message:   %s\n", wf.Status.Message)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tPHASE\tATTEMPTS\tCLUSTER\tDURATION\tMESSAGE")
	for _, n := range wf.Spec.Nodes {
		st := wf.Status.Nodes[n.Name]
		p := string(st.Phase)
		if p == "" {
			p = "NotStarted"
		}
		cluster := ""
		if a := lastAttempt(st); a != nil {
			cluster = a.Cluster
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", n.Name, p, len(st.Attempts), cluster, duration(st.StartedAt, st.FinishedAt), st.Message)
	}
	tw.Flush()
	for _, k := range sortedKeys(wf.Status.Outputs) {
		fmt.Fprintf(out, "Output %s = %s\n", k, wf.Status.Outputs[k].Raw)
	}
}

func duration(start, end *metav1.Time) string {
	if start == nil {
		return ""
	}
	stop := time.Now()
	if end != nil {
		stop = end.Time
	}
	return stop.Sub(start.Time).Round(time.Millisecond).String()
}

func listCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflows in a namespace (or all with -A)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ns := g.ns()
			if all {
				ns = ""
			}
			list, err := c.RotorV1alpha1().Workflows(ns).List(cmd.Context(), metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("list workflows: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tPHASE\tNODES\tAGE\tMESSAGE")
			for _, wf := range list.Items {
				done := 0
				for _, st := range wf.Status.Nodes {
					if st.Phase == v1alpha1.NodeSucceeded {
						done++
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", wf.Namespace, wf.Name, wf.Status.Phase, done, len(wf.Spec.Nodes),
					time.Since(wf.CreationTimestamp.Time).Round(time.Second), wf.Status.Message)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace")
	return cmd
}
