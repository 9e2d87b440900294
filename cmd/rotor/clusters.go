package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// The taints rotor cordon and rotor drain put on a Cluster.
const (
	taintCordon = "rotor.dev/cordon"
	taintDrain  = "rotor.dev/drain"
)

func clustersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "clusters",
		Short: "List target clusters: health, failover group, capacity, load and last probe",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.RotorV1alpha1().Clusters().List(cmd.Context(), metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("list clusters: %w", err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tREADY\tREACHABLE\tGROUP\tWEIGHT\tPODS\tTAINTS\tLAST PROBE\tMESSAGE")
			for _, cl := range list.Items {
				pods := fmt.Sprint(cl.Status.PodsInFlight)
				if m := cl.Spec.Capacity.MaxTaskPods; m > 0 {
					pods += fmt.Sprintf("/%d", m)
				}
				probe := "never"
				if t := cl.Status.LastProbeTime; t != nil {
					probe = fmt.Sprintf("%s ago (%dms)", time.Since(t.Time).Round(time.Second), cl.Status.LastProbeLatencyMillis)
				}
				var taints []string
				for _, t := range cl.Spec.Taints {
					taints = append(taints, t.Key+":"+string(t.Effect))
				}
				msg := ""
				if r := meta.FindStatusCondition(cl.Status.Conditions, v1alpha1.ClusterReady); r != nil && r.Status != metav1.ConditionTrue {
					msg = r.Message
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", cl.Name, condStatus(cl, v1alpha1.ClusterReady), condStatus(cl, v1alpha1.ClusterReachable),
					cl.Spec.FailoverGroup, cl.Spec.Weight, pods, orNone(strings.Join(taints, ",")), probe, msg)
			}
			return w.Flush()
		},
	}
}

func condStatus(c v1alpha1.Cluster, typ string) string {
	cond := meta.FindStatusCondition(c.Status.Conditions, typ)
	if cond == nil {
		return "Unknown"
	}
	if cond.Status == metav1.ConditionFalse {
		return fmt.Sprintf("False (%s ago)", time.Since(cond.LastTransitionTime.Time).Round(time.Second))
	}
	return string(cond.Status)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// taintCmd builds cordon, drain and uncordon: each sets the Cluster's
// Rotor taints (a spec change every replica sees through its cache).
func taintCmd(g *globals, use, short string, set func([]corev1.Taint) []corev1.Taint, done string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " CLUSTER",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cl, err := c.RotorV1alpha1().Clusters().Get(cmd.Context(), args[0], metav1.GetOptions{})
				if err != nil {
					return err
				}
				cl.Spec.Taints = set(cl.Spec.Taints)
				_, err = c.RotorV1alpha1().Clusters().Update(cmd.Context(), cl, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				return fmt.Errorf("%s cluster %s: %w", use, args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s %s\n", args[0], done)
			return nil
		},
	}
}

// withTaint returns taints without Rotor's own, plus key:effect (if key
// is not empty).
func withTaint(taints []corev1.Taint, key string, effect corev1.TaintEffect) []corev1.Taint {
	out := make([]corev1.Taint, 0, len(taints)+1)
	for _, t := range taints {
		if t.Key != taintCordon && t.Key != taintDrain {
			out = append(out, t)
		}
	}
	if key != "" {
		out = append(out, corev1.Taint{Key: key, Effect: effect})
	}
	return out
}

func cordonCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{
		taintCmd(g, "cordon", "Stop placing new task attempts on a cluster (running ones stay)",
			func(t []corev1.Taint) []corev1.Taint { return withTaint(t, taintCordon, corev1.TaintEffectNoSchedule) }, "cordoned: no new attempts"),
		taintCmd(g, "drain", "Cordon a cluster and move its attempts whose pods have not started",
			func(t []corev1.Taint) []corev1.Taint { return withTaint(t, taintDrain, corev1.TaintEffectNoExecute) }, "drained: no new attempts, unstarted ones move"),
		taintCmd(g, "uncordon", "Let a cordoned or drained cluster take new attempts again",
			func(t []corev1.Taint) []corev1.Taint { return withTaint(t, "", "") }, "uncordoned"),
	}
}
