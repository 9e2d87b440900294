package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/controller/manifest"
)

// readWorkflow reads and checks one Workflow from a YAML or JSON file
// ("-" for stdin). It parses YAML 1.2, so keys like y and n stay strings.
func readWorkflow(path string) (*v1alpha1.Workflow, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	docs, err := manifest.ToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s: want exactly one Workflow, found %d documents", path, len(docs))
	}
	wf := &v1alpha1.Workflow{}
	dec := json.NewDecoder(bytes.NewReader(docs[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(wf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	gv := v1alpha1.SchemeGroupVersion.String()
	if wf.Kind != "Workflow" || wf.APIVersion != gv {
		return nil, fmt.Errorf("%s: want kind Workflow, apiVersion %s; got kind %q, apiVersion %q", path, gv, wf.Kind, wf.APIVersion)
	}
	if wf.Name == "" && wf.GenerateName == "" {
		return nil, fmt.Errorf("%s: metadata.name (or metadata.generateName) is required", path)
	}
	if _, errs := dag.Build(&wf.Spec); len(errs) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: invalid workflow:", path)
		for _, e := range errs {
			fmt.Fprintf(&b, "\n  %s", e.Error())
		}
		return nil, fmt.Errorf("%s", b.String())
	}
	return wf, nil
}

func validateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a workflow file without submitting it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			wf, err := readWorkflow(file)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d nodes)\n", file, len(wf.Spec.Nodes))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "workflow file (YAML or JSON, - for stdin)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func submitCmd(g *globals) *cobra.Command {
	var file string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "submit -f FILE [-n NS] [--wait]",
		Short: "Validate and submit a workflow; with --wait, follow it to the end",
		RunE: func(cmd *cobra.Command, _ []string) error {
			wf, err := readWorkflow(file)
			if err != nil {
				return err
			}
			if g.namespace != "" || wf.Namespace == "" {
				wf.Namespace = g.ns()
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			created, err := c.RotorV1alpha1().Workflows(wf.Namespace).Create(ctx, wf, metav1.CreateOptions{})
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("submit %s/%s: namespace %q does not exist in the control cluster: ask your platform team to create it: %w", wf.Namespace, wf.Name, wf.Namespace, err)
			}
			if err != nil {
				return fmt.Errorf("submit %s/%s: %w", wf.Namespace, wf.Name, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "workflow %s/%s submitted\n", created.Namespace, created.Name)
			if !wait {
				return nil
			}
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			final, err := follow(ctx, c, created.Namespace, created.Name, out)
			if err != nil {
				return err
			}
			printSummary(out, final)
			if final.Status.Phase != v1alpha1.WorkflowSucceeded {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "workflow file (YAML or JSON, - for stdin)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the workflow until it ends; exit non-zero unless it succeeds")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, give up after this long (0: never)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// follow prints each node phase change until the workflow ends.
func follow(ctx context.Context, c versioned.Interface, ns, name string, out io.Writer) (*v1alpha1.Workflow, error) {
	seen := map[string]string{}
	start := time.Now()
	for {
		wf, err := c.RotorV1alpha1().Workflows(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("follow %s/%s: %w", ns, name, err)
		}
		names := make([]string, 0, len(wf.Status.Nodes))
		for n := range wf.Status.Nodes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			st := wf.Status.Nodes[n]
			line := string(st.Phase)
			if a := lastAttempt(st); a != nil && a.Cluster != "" {
				line += fmt.Sprintf(" (attempt %d on %s)", a.Number, a.Cluster)
			}
			if seen[n] != line {
				seen[n] = line
				msg := ""
				if st.Phase == v1alpha1.NodeFailed || st.Phase == v1alpha1.NodeRetrying {
					msg = ": " + st.Message
				}
				fmt.Fprintf(out, "%6.1fs  %-20s %s%s\n", time.Since(start).Seconds(), n, line, msg)
			}
		}
		if wf.Status.Phase.IsTerminal() {
			return wf, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped following %s/%s (still %s): %w", ns, name, wf.Status.Phase, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func lastAttempt(st v1alpha1.NodeStatus) *v1alpha1.Attempt {
	if len(st.Attempts) == 0 {
		return nil
	}
	return &st.Attempts[len(st.Attempts)-1]
}

func printSummary(out io.Writer, wf *v1alpha1.Workflow) {
	fmt.Fprintf(out, "workflow %s/%s %s", wf.Namespace, wf.Name, wf.Status.Phase)
	if wf.Status.StartedAt != nil && wf.Status.FinishedAt != nil {
		fmt.Fprintf(out, " in %s", wf.Status.FinishedAt.Sub(wf.Status.StartedAt.Time).Round(time.Millisecond))
	}
	fmt.Fprintf(out, ": %s\n", wf.Status.Message)
	for _, k := range sortedKeys(wf.Status.Outputs) {
		fmt.Fprintf(out, "  output %s = %s\n", k, wf.Status.Outputs[k].Raw)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
