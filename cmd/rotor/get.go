package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/internal/tracing"
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
	if wf.Status.StartedAt != nil {
		fmt.Fprintf(out, "Duration:  %s\n", duration(wf.Status.StartedAt, wf.Status.FinishedAt))
	}
	if c := meta.FindStatusCondition(wf.Status.Conditions, v1alpha1.WorkflowCleanupBlocked); c != nil && c.Status == metav1.ConditionTrue {
		fmt.Fprintf(out, "Deleting:  %s\n", c.Message)
	}
	if wf.UID != "" {
		// The execution's trace (and the trace_id of its log lines).
		tid, _ := tracing.IDs(wf.UID)
		fmt.Fprintf(out, "Trace:     %s\n", tid)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tPHASE\tATTEMPTS\tCLUSTER\tDURATION\tMESSAGE")
	nodes, err := wf.Status.AllNodes()
	if err != nil {
		fmt.Fprintf(out, "(cannot read compacted node statuses: %v)\n", err)
		nodes = wf.Status.Nodes
	}
	children := childIndex(nodes)
	top := []string{}
	for _, n := range wf.Spec.Nodes {
		top = append(top, n.Name)
	}
	if len(top) == 0 { // a workflow that runs a template
		top = children[""]
	}
	if of := wf.Spec.OnFailure; of != nil {
		top = append(top, of.Name)
	}
	var walk func(ids []string, indent string)
	walk = func(ids []string, indent string) {
		for i, id := range ids {
			branch, next := "", indent
			if indent != "" || strings.Contains(id, "/") {
				if i == len(ids)-1 {
					branch, next = "└─ ", indent+"   "
				} else {
					branch, next = "├─ ", indent+"│  "
				}
			}
			row(tw, indent+branch+lastSegment(id), nodes[id])
			walk(children[id], next)
		}
	}
	walk(top, "")
	tw.Flush()
	for _, k := range slices.Sorted(maps.Keys(wf.Status.Outputs)) {
		raw := wf.Status.Outputs[k].Raw
		if r, ok := dataRef(raw); ok {
			fmt.Fprintf(out, "Output %s = %s (%s)\n", k, r.URI, sizeOf(r))
			continue
		}
		fmt.Fprintf(out, "Output %s = %s\n", k, raw)
	}
	// Files, directories and offloaded values the nodes wrote, where they
	// are and how big.
	var data []string
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		outs := nodes[id].Outputs
		for _, k := range slices.Sorted(maps.Keys(outs)) {
			if r, ok := dataRef(outs[k].Raw); ok {
				data = append(data, fmt.Sprintf("%s.%s\t%s\t%s", id, k, sizeOf(r), r.URI))
			}
		}
	}
	if len(data) > 0 {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nDATA\tSIZE\tURI")
		for _, d := range data {
			fmt.Fprintln(tw, d)
		}
		tw.Flush()
	}
}

// dataRef reads a file or directory output's reference, or an offloaded
// value's.
func dataRef(raw []byte) (ref.Ref, bool) {
	if r, isRef, err := ref.ParseOffloaded(raw); isRef && err == nil {
		return r, true
	}
	var r ref.Ref
	if json.Unmarshal(raw, &r) != nil || r.Check() != nil {
		return ref.Ref{}, false
	}
	return r, true
}

func sizeOf(r ref.Ref) string {
	s := humanBytes(r.Size)
	if r.IsDir() {
		s += fmt.Sprintf(", %d files", r.Files)
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func row(tw io.Writer, label string, st v1alpha1.NodeStatus) {
	p := string(st.Phase)
	if p == "" {
		p = "NotStarted"
	}
	attempts, cluster, dur := "", "", duration(st.StartedAt, st.FinishedAt)
	if n := len(st.Attempts); n > 0 {
		attempts, cluster = strconv.Itoa(n), st.Attempts[n-1].Cluster
	}
	if info, ok := executor.ParseCompact(st.Compact); ok {
		attempts, cluster = strconv.Itoa(int(info.Attempts)), info.Cluster
		dur = info.FinishedAt.Sub(info.StartedAt).String()
	}
	msg := st.Message
	if len(msg) > 120 {
		msg = msg[:117] + "..."
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", label, p, attempts, cluster, dur, msg)
}

// childIndex maps each node path to its direct children, in natural order
// (m/2 before m/10); "" maps to the top-level nodes.
func childIndex(nodes map[string]v1alpha1.NodeStatus) map[string][]string {
	out := map[string][]string{}
	for id := range nodes {
		parent := ""
		if i := strings.LastIndex(id, "/"); i >= 0 {
			parent = id[:i]
		}
		out[parent] = append(out[parent], id)
	}
	for _, ids := range out {
		sort.Slice(ids, func(i, j int) bool { return naturalLess(ids[i], ids[j]) })
	}
	return out
}

func naturalLess(a, b string) bool {
	la, lb := lastSegment(a), lastSegment(b)
	na, errA := strconv.Atoi(la)
	nb, errB := strconv.Atoi(lb)
	if errA == nil && errB == nil {
		return na < nb
	}
	return a < b
}

func lastSegment(id string) string {
	if i := strings.LastIndex(id, "/"); i >= 0 {
		return id[i+1:]
	}
	return id
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
				nodes, _ := wf.Status.AllNodes()
				for _, st := range nodes {
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
