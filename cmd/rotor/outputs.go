package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/agent"
	"github.com/rotor-dev/rotor/data/location"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

func outputsCmd(g *globals) *cobra.Command {
	var download string
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "outputs WORKFLOW [NODE] [--download DIR]",
		Short: "List a workflow's node outputs (files and directories with their size and URI), and download them",
		Long: `List the outputs of every node of a workflow, or of one node. With
--download DIR, write each to DIR/<node>/<output>: a file or directory
fetched from the object store and checked against its sha256, any other
value as DIR/<node>/<output>.json.

Downloading reads the store's credentials from the Secret the propeller
uses (--store-secret in --store-secret-namespace), so it needs get on
that Secret; next to a sandbox (rotor dev up) --store defaults to the
sandbox's S3 server.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			wf, err := c.RotorV1alpha1().Workflows(g.ns()).Get(ctx, args[0], metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get workflow %s/%s: %w", g.ns(), args[0], err)
			}
			nodes, err := wf.Status.AllNodes()
			if err != nil {
				return fmt.Errorf("read the node statuses of %s: %w", wf.Name, err)
			}
			ids := slices.Sorted(maps.Keys(nodes))
			if len(args) == 2 {
				if _, ok := nodes[args[1]]; !ok {
					return fmt.Errorf("workflow %s has no node %q (nodes: %s)", wf.Name, args[1], strings.Join(ids, ", "))
				}
				ids = []string{args[1]}
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tOUTPUT\tSIZE\tVALUE")
			n := 0
			for _, id := range ids {
				outs := nodes[id].Outputs
				for _, k := range slices.Sorted(maps.Keys(outs)) {
					raw := outs[k].Raw
					if r, ok := dataRef(raw); ok {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", id, k, sizeOf(r), r.URI)
					} else {
						fmt.Fprintf(tw, "%s\t%s\t\t%s\n", id, k, truncateText(string(raw), 80))
					}
					n++
				}
			}
			tw.Flush()
			if download == "" {
				return nil
			}
			if n == 0 {
				return fmt.Errorf("nothing to download: %s has no outputs yet (phase %s)", wf.Name, wf.Status.Phase)
			}
			st, err := sf.open(ctx, g, wf.Namespace)
			if err != nil {
				return err
			}
			defer st.Close()
			return downloadOutputs(ctx, st, wf, nodes, ids, download, out)
		},
	}
	cmd.Flags().StringVar(&download, "download", "", "write the outputs under this directory")
	sf.bind(cmd)
	return cmd
}

// storeFlags are --store, --store-secret and --store-secret-namespace.
type storeFlags struct {
	url, secret, secretNS string
	cmd                   *cobra.Command
}

func (f *storeFlags) bind(cmd *cobra.Command) {
	f.cmd = cmd
	cmd.Flags().StringVar(&f.url, "store", "", "the object store (the propeller's --raw-data-url; default: the namespace's own location if its Namespace names one, else the sandbox's next to one)")
	cmd.Flags().StringVar(&f.secret, "store-secret", localcluster.RawDataSecret, "Secret with the store's credentials (the propeller's --raw-data-secret, or the one the namespace's location names); '': $ROTOR_STORE_ACCESS_KEY_ID and $ROTOR_STORE_SECRET_ACCESS_KEY")
	cmd.Flags().StringVar(&f.secretNS, "store-secret-namespace", localcluster.RotorNamespace, "namespace of --store-secret (Rotor's)")
}

// open opens the store that serves namespace: --store, else the location
// its Namespace names (rotor.dev/raw-data-url, with the Secret
// rotor.dev/raw-data-secret names unless --store-secret is given), else
// the sandbox's.
func (f *storeFlags) open(ctx context.Context, g *globals, namespace string) (*store.Store, error) {
	url, secret := f.url, f.secret
	if url == "" {
		if own, sec := namespaceLocation(ctx, g, namespace); own != "" {
			url = own
			if !f.cmd.Flags().Changed("store-secret") {
				secret = sec
			}
		}
	}
	return openStore(ctx, g, url, secret, f.secretNS)
}

// namespaceLocation reads a namespace's own raw-data location from its
// annotations; "" when it names none or cannot be read (a tenant may not
// read Namespaces: then --store it is).
func namespaceLocation(ctx context.Context, g *globals, namespace string) (url, secret string) {
	rc, err := g.restConfig()
	if err != nil {
		return "", ""
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", ""
	}
	ns, err := kube.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if err != nil {
		return "", ""
	}
	return ns.Annotations[location.AnnotURL], ns.Annotations[location.AnnotSecret]
}

// openStore opens the store the propeller writes to, with its
// credentials.
func openStore(ctx context.Context, g *globals, url, secret, ns string) (*store.Store, error) {
	if url == "" {
		env, err := localcluster.Load(".rotor")
		if err != nil || env.S3 == nil {
			return nil, fmt.Errorf("no object store: pass --store (the propeller's --raw-data-url), or run next to a sandbox (rotor dev up)")
		}
		url = env.S3.URL(localcluster.RawDataBucket, "raw")
	}
	cfg := store.Config{URL: url}
	if secret == "" {
		cfg.AccessKeyID, cfg.SecretAccessKey = os.Getenv("ROTOR_STORE_ACCESS_KEY_ID"), os.Getenv("ROTOR_STORE_SECRET_ACCESS_KEY")
	}
	if secret != "" {
		rc, err := g.restConfig()
		if err != nil {
			return nil, err
		}
		kube, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, err
		}
		sec, err := kube.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("read the store's credentials (secret %s/%s needs get on it; or --store-secret '' with $ROTOR_STORE_ACCESS_KEY_ID and $ROTOR_STORE_SECRET_ACCESS_KEY): %w", ns, secret, err)
		}
		cfg.AccessKeyID, cfg.SecretAccessKey = string(sec.Data["accessKeyID"]), string(sec.Data["secretAccessKey"])
	}
	return store.Open(ctx, cfg)
}

func downloadOutputs(ctx context.Context, st *store.Store, wf *v1alpha1.Workflow, nodes map[string]v1alpha1.NodeStatus, ids []string, dir string, out interface{ Write([]byte) (int, error) }) error {
	for _, id := range ids {
		outs := nodes[id].Outputs
		for _, k := range slices.Sorted(maps.Keys(outs)) {
			dst := filepath.Join(dir, filepath.FromSlash(id), k)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			raw := outs[k].Raw
			if _, isRef, _ := ref.ParseOffloaded(raw); isRef {
				dst += ".json" // an offloaded value: its JSON, like the others'
			}
			if r, ok := dataRef(raw); ok {
				if err := agent.Fetch(ctx, st, r, dst); err != nil {
					return fmt.Errorf("download %s.%s of %s: %w", id, k, wf.Name, err)
				}
				fmt.Fprintf(out, "downloaded %s.%s (%s) to %s\n", id, k, sizeOf(r), dst)
				continue
			}
			var v any
			_ = json.Unmarshal(raw, &v)
			b, _ := json.MarshalIndent(v, "", "  ")
			if err := os.WriteFile(dst+".json", append(b, '\n'), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
