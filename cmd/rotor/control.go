package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func abortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "abort NAME",
		Short: "Stop every running pod of a workflow and end it Aborted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			_, err = c.RotorV1alpha1().Workflows(g.ns()).Patch(cmd.Context(), args[0], types.MergePatchType,
				[]byte(`{"spec":{"abort":true}}`), metav1.PatchOptions{})
			if err != nil {
				return fmt.Errorf("abort %s/%s: %w", g.ns(), args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "workflow %s/%s: abort requested\n", g.ns(), args[0])
			return nil
		},
	}
}

func watchCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "watch NAME",
		Short: "Follow a workflow live until it ends; exit non-zero unless it succeeds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			out := cmd.OutOrStdout()
			wf, err := follow(ctx, c, g.ns(), args[0], out)
			if err != nil {
				return err
			}
			printSummary(out, wf)
			if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
				return exitError{code: 1}
			}
			return nil
		},
	}
}

func approveCmd(g *globals, verb string) *cobra.Command {
	answer := map[string]string{"approve": "approve", "reject": "reject"}[verb]
	return &cobra.Command{
		Use:   verb + " WORKFLOW NODE",
		Short: "Answer an approval gate: let the workflow go on (approve) or fail it there (reject)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			wf, node := args[0], args[1]
			patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"approvals": map[string]string{node: answer}}})
			_, err = c.RotorV1alpha1().Workflows(g.ns()).Patch(cmd.Context(), wf, types.MergePatchType, patch, metav1.PatchOptions{})
			if err != nil {
				return fmt.Errorf("%s %s/%s node %s: %w", verb, g.ns(), wf, node, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "workflow %s/%s: gate %s %sd\n", g.ns(), wf, node, verb)
			return nil
		},
	}
}

func relaunchCmd(g *globals) *cobra.Command {
	var recover, wait bool
	cmd := &cobra.Command{
		Use:   "relaunch NAME [--recover] [--wait]",
		Short: "Start a new execution of a workflow's spec and inputs; with --recover, reuse every node that succeeded",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ns := g.ns()
			src, err := c.RotorV1alpha1().Workflows(ns).Get(cmd.Context(), args[0], metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("relaunch %s/%s: %w", ns, args[0], err)
			}
			wf := &v1alpha1.Workflow{
				ObjectMeta: metav1.ObjectMeta{
					GenerateName: src.Name + "-", Namespace: ns, Labels: src.Labels,
					Annotations: map[string]string{"rotor.dev/relaunch-of": src.Name},
				},
				Spec: *src.Spec.DeepCopy(),
			}
			wf.Spec.Abort, wf.Spec.Approvals, wf.Spec.RecoverFrom = false, nil, ""
			if recover {
				wf.Spec.RecoverFrom = src.Name
			}
			created, err := c.RotorV1alpha1().Workflows(ns).Create(cmd.Context(), wf, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("relaunch %s/%s: %w", ns, src.Name, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "workflow %s/%s submitted (relaunch of %s", ns, created.Name, src.Name)
			if recover {
				fmt.Fprint(out, ", recovering its succeeded nodes")
			}
			fmt.Fprintln(out, ")")
			if !wait {
				return nil
			}
			final, err := follow(cmd.Context(), c, ns, created.Name, out)
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
	cmd.Flags().BoolVar(&recover, "recover", false, "reuse the outputs of every node that succeeded; run only the rest")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the new execution until it ends")
	return cmd
}
