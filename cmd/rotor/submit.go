package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/controller/manifest"
)

// readObject reads and checks one Workflow or WorkflowTemplate from a YAML
// or JSON file ("-" for stdin). It parses YAML 1.2, so keys like y and n
// stay strings.
func readObject(path string) (wf *v1alpha1.Workflow, tpl *v1alpha1.WorkflowTemplate, err error) {
	return readObjectWith(path, nil)
}

// readObjectWith is readObject with set applied to a Workflow before it
// is checked (rotor submit --input gives inputs their values).
func readObjectWith(path string, set func(*v1alpha1.Workflow) error) (wf *v1alpha1.Workflow, tpl *v1alpha1.WorkflowTemplate, err error) {
	var data []byte
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, nil, err
	}
	docs, err := manifest.ToJSON(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(docs) != 1 {
		return nil, nil, fmt.Errorf("%s: want exactly one Workflow or WorkflowTemplate, found %d documents", path, len(docs))
	}
	var meta metav1.TypeMeta
	_ = json.Unmarshal(docs[0], &meta)
	gv := v1alpha1.SchemeGroupVersion.String()
	var obj any
	var objMeta *metav1.ObjectMeta
	var errs field.ErrorList
	switch {
	case meta.APIVersion == gv && meta.Kind == "Workflow":
		wf = &v1alpha1.Workflow{}
		obj, objMeta = wf, &wf.ObjectMeta
	case meta.APIVersion == gv && meta.Kind == "WorkflowTemplate":
		tpl = &v1alpha1.WorkflowTemplate{}
		obj, objMeta = tpl, &tpl.ObjectMeta
	default:
		return nil, nil, fmt.Errorf("%s: want kind Workflow or WorkflowTemplate, apiVersion %s; got kind %q, apiVersion %q", path, gv, meta.Kind, meta.APIVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(docs[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if objMeta.Name == "" && (tpl != nil || objMeta.GenerateName == "") {
		return nil, nil, fmt.Errorf("%s: metadata.name is required", path)
	}
	if wf != nil && set != nil {
		if err := set(wf); err != nil {
			return nil, nil, err
		}
	}
	if wf != nil {
		_, errs = dag.Build(&wf.Spec)
	} else {
		_, errs = dag.BuildNested(&tpl.Spec, nil, field.NewPath("spec"))
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%s: %s", path, dag.Message(strings.ToLower(meta.Kind), errs))
	}
	return wf, tpl, nil
}

// applyTemplate creates a WorkflowTemplate or replaces its spec.
func applyTemplate(cmd *cobra.Command, g *globals, tpl *v1alpha1.WorkflowTemplate) error {
	if g.namespace != "" || tpl.Namespace == "" {
		tpl.Namespace = g.ns()
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	api := c.RotorV1alpha1().WorkflowTemplates(tpl.Namespace)
	old, err := api.Get(cmd.Context(), tpl.Name, metav1.GetOptions{})
	verb := "created"
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(cmd.Context(), tpl, metav1.CreateOptions{})
	case err == nil:
		old.Spec, verb = tpl.Spec, "updated"
		_, err = api.Update(cmd.Context(), old, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("apply WorkflowTemplate %s/%s: %w", tpl.Namespace, tpl.Name, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "workflowtemplate %s/%s %s\n", tpl.Namespace, tpl.Name, verb)
	return nil
}

func validateCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a workflow file without submitting it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			wf, tpl, err := readObject(file)
			if err != nil {
				return err
			}
			if tpl != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid WorkflowTemplate (%d nodes)\n", file, len(tpl.Spec.Nodes))
				return nil
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
	var inputs []string
	var st storeFlags
	cmd := &cobra.Command{
		Use:   "submit -f FILE [-n NS] [--input NAME=VALUE|NAME=@PATH]... [--wait]",
		Short: "Validate and submit a workflow; with --wait, follow it to the end",
		Long: `Validate and submit a workflow; with --wait, follow it to the end.

--input NAME=VALUE sets a workflow input (VALUE is JSON, or a string if
it is not). --input NAME=@PATH sets it from a local file: a file or
directory input's file or directory is uploaded to the object store
first (under <store>/<namespace>/_uploads/<id>/, checked by sha256) and
the input is its reference; any other input takes the file's content
as its JSON value. Uploading writes with the store's credentials: from
--store-secret (the propeller's, for platform admins), or with
--store-secret '' from $ROTOR_STORE_ACCESS_KEY_ID and
$ROTOR_STORE_SECRET_ACCESS_KEY (credentials your platform team gave
you for your namespace's part of the store). Next to a sandbox (rotor
dev up), --store defaults to the sandbox's S3 server.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The namespace is set before the inputs: an upload lies in
			// the workflow's namespace's part of the store.
			wf, tpl, err := readObjectWith(file, func(wf *v1alpha1.Workflow) error {
				if g.namespace != "" || wf.Namespace == "" {
					wf.Namespace = g.ns()
				}
				return setInputs(cmd.Context(), g, wf, inputs, st, cmd.OutOrStdout())
			})
			if err != nil {
				return err
			}
			if tpl != nil {
				if len(inputs) > 0 {
					return fmt.Errorf("--input sets a Workflow's inputs; %s is a WorkflowTemplate", file)
				}
				return applyTemplate(cmd, g, tpl)
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
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "NAME=VALUE or NAME=@PATH: set a workflow input; @PATH uploads a file or directory input first (repeatable)")
	st.bind(cmd)
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
		nodes, err := wf.Status.AllNodes()
		if err != nil {
			return nil, fmt.Errorf("follow %s/%s: %w", ns, name, err)
		}
		names := make([]string, 0, len(nodes))
		for n := range nodes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			st := nodes[n]
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
	for _, k := range slices.Sorted(maps.Keys(wf.Status.Outputs)) {
		fmt.Fprintf(out, "  output %s = %s\n", k, wf.Status.Outputs[k].Raw)
	}
}
