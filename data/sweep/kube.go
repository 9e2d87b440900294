package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/data/location"
	"github.com/rotor-dev/rotor/data/ref"
)

// AnnotRetention on a Namespace sets its retention (a Go duration such as
// 168h; 0 keeps data as long as its workflow exists), over the install's
// default.
const AnnotRetention = "rotor.dev/raw-data-retention"

// CacheLister lists a namespace's task-cache entries (taskcache.Store).
type CacheLister interface {
	List(ctx context.Context, namespace, task string) ([]*taskcache.Entry, error)
}

// Kube is the Source of a control cluster and the task cache.
type Kube struct {
	Rotor versioned.Interface
	Kube  kubernetes.Interface
	// Cache, if set, is the task cache whose entries' references stay.
	Cache CacheLister
	// DefaultRetention applies where a namespace does not say.
	DefaultRetention time.Duration
}

// Workflows lists every Workflow, 500 at a time, from the apiserver.
func (k *Kube) Workflows(ctx context.Context) ([]Workflow, error) {
	var out []Workflow
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := k.Rotor.RotorV1alpha1().Workflows("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list workflows (the sweeper needs list on workflows.rotor.dev in every namespace): %w", err)
		}
		for i := range list.Items {
			wf := &list.Items[i]
			w := Workflow{Namespace: wf.Namespace, Name: wf.Name, UID: string(wf.UID)}
			if t := wf.Status.FinishedAt; t != nil && wf.Status.Phase.IsTerminal() {
				w.Finished = &t.Time
			}
			w.Refs = statusRefs(&wf.Status)
			for _, in := range wf.Spec.Inputs {
				if in.Value != nil { // an upload of rotor submit --input x=@path
					w.Refs = append(w.Refs, Refs(in.Value.Raw)...)
				}
			}
			out = append(out, w)
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// statusRefs finds the references of every node's outputs (compacted ones
// too) and of the workflow's.
func statusRefs(st *v1alpha1.WorkflowStatus) []ref.Ref {
	var out []ref.Ref
	nodes, err := st.AllNodes()
	if err != nil {
		nodes = st.Nodes
	}
	for _, n := range nodes {
		for _, v := range n.Outputs {
			out = append(out, Refs(v.Raw)...)
		}
	}
	for _, v := range st.Outputs {
		out = append(out, Refs(v.Raw)...)
	}
	return out
}

// Retention reads the namespace's annotation, else the default. A
// namespace that is gone keeps the default: its workflows are gone too.
func (k *Kube) Retention(ctx context.Context, namespace string) (time.Duration, error) {
	ns, err := k.Kube.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if err != nil {
		return k.DefaultRetention, nil // a missing or unreadable namespace takes the default
	}
	v, ok := ns.Annotations[AnnotRetention]
	if !ok {
		return k.DefaultRetention, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		// A typo must not delete anything sooner than meant: keep.
		return 0, nil
	}
	return d, nil
}

// CacheRefs lists the references of the namespace's cache entries.
func (k *Kube) CacheRefs(ctx context.Context, namespace string) ([]ref.Ref, error) {
	if k.Cache == nil {
		return nil, nil
	}
	entries, err := k.Cache.List(ctx, namespace, "")
	if err != nil {
		return nil, fmt.Errorf("list the task cache of %s (its entries' data must stay): %w", namespace, err)
	}
	var out []ref.Ref
	for _, e := range entries {
		for _, v := range e.Outputs {
			out = append(out, Refs(v)...)
		}
	}
	return out, nil
}

// TenantStores lists the tenants' own locations for the sweeper: those
// the Namespaces' annotations name now. One that cannot be opened is
// logged and skipped; the others are swept.
func TenantStores(res *location.Resolver, list func(context.Context) ([]*corev1.Namespace, error), log *slog.Logger) func(context.Context) ([]Store, error) {
	return func(ctx context.Context) ([]Store, error) {
		nss, err := list(ctx)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, ns := range nss {
			if ns.Annotations[location.AnnotURL] != "" {
				names = append(names, ns.Name)
			}
		}
		locs, errs := res.Tenants(ctx, names)
		for _, err := range errs {
			log.Warn("a tenant's raw-data location is not swept", "err", err)
		}
		out := make([]Store, len(locs))
		for i, l := range locs {
			out[i] = l.Store
		}
		return out, nil
	}
}
