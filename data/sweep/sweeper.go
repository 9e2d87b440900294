package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

// Store is the raw-data location the sweeper lists and deletes from.
type Store interface {
	Root() string
	List(ctx context.Context, prefix string, each func(store.Object) error) error
	Delete(ctx context.Context, uri string) error
}

// Source tells the sweeper what exists and what stays referenced.
type Source interface {
	// Workflows lists every Workflow with the references its status
	// holds, read from the apiserver (not a cache that may lag).
	Workflows(ctx context.Context) ([]Workflow, error)
	// Retention is a namespace's retention (0: keep while the workflow
	// exists).
	Retention(ctx context.Context, namespace string) (time.Duration, error)
	// CacheRefs lists the references of a namespace's live task-cache
	// entries.
	CacheRefs(ctx context.Context, namespace string) ([]ref.Ref, error)
}

// Sweeper runs Plan every Interval and deletes what it decides.
type Sweeper struct {
	// Store is the install's location.
	Store Store
	// Tenants, if set, lists the tenants' own locations (package
	// data/location) to sweep as well.
	Tenants  func(ctx context.Context) ([]Store, error)
	Source   Source
	Clock    clock.Clock
	Interval time.Duration
	// Grace spares objects modified this recently (belt and braces: the
	// order of the listings already makes a new workflow's objects safe).
	Grace  time.Duration
	Logger *slog.Logger
}

var (
	deletedObjects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rotor_raw_data_deleted_objects_total", Help: "Objects the raw-data sweeper deleted.",
	})
	deletedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rotor_raw_data_deleted_bytes_total", Help: "Bytes of the objects the raw-data sweeper deleted.",
	})
	sweeps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotor_raw_data_sweeps_total", Help: "Raw-data sweeps, by result (ok, error).",
	}, []string{"result"})
)

func init() { prometheus.MustRegister(deletedObjects, deletedBytes, sweeps) }

// Run sweeps every Interval until ctx ends (the first sweep after one
// Interval: a leader that just took over does not sweep at once).
func (s *Sweeper) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Clock.After(s.Interval):
		}
		res, err := s.Sweep(ctx)
		if err != nil {
			sweeps.WithLabelValues("error").Inc()
			s.Logger.Warn("raw-data sweep failed; trying again next time", "err", err, "interval", s.Interval)
			continue
		}
		sweeps.WithLabelValues("ok").Inc()
		if len(res.Delete) > 0 || res.Protected > 0 {
			s.Logger.Info("raw-data sweep", "deleted", len(res.Delete), "bytes", res.Bytes, "workflows", len(res.Gone), "protected", res.Protected, "recent", res.Recent)
		}
	}
}

// Sweep lists, decides and deletes once, in every location. All objects
// are listed before the Workflows (see Input.Objects).
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	stores := []Store{s.Store}
	if s.Tenants != nil {
		more, err := s.Tenants(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("tenants' raw-data locations: %w", err)
		}
		stores = append(stores, more...)
	}
	now := s.Clock.Now()
	inputs := make([]Input, 0, len(stores))
	var picked []Store // inputs[i] is of picked[i]
	namespaces := map[string]bool{}
	seen := map[string]bool{}
	for _, st := range stores {
		root := st.Root()
		if seen[root] {
			continue // two namespaces naming one location
		}
		seen[root] = true
		in := Input{Root: root, Now: now, Grace: s.Grace}
		err := st.List(ctx, root, func(o store.Object) error {
			in.Objects = append(in.Objects, Object{URI: o.URI, Size: o.Size, Modified: o.Modified})
			if ns, _, ok := cutNamespace(root, o.URI); ok {
				namespaces[ns] = true
			}
			return nil
		})
		if err != nil {
			return Result{}, fmt.Errorf("list the raw data under %s: %w", root, err)
		}
		inputs = append(inputs, in)
		picked = append(picked, st)
	}
	if len(namespaces) == 0 {
		return Result{}, nil
	}
	workflows, err := s.Source.Workflows(ctx)
	if err != nil {
		return Result{}, err
	}
	retention := map[string]time.Duration{}
	var cacheRefs []ref.Ref
	for _, ns := range sortedKeys(namespaces) {
		if retention[ns], err = s.Source.Retention(ctx, ns); err != nil {
			return Result{}, err
		}
		refs, err := s.Source.CacheRefs(ctx, ns)
		if err != nil {
			return Result{}, err
		}
		cacheRefs = append(cacheRefs, refs...)
	}
	total := Result{Gone: map[string]string{}}
	for i, in := range inputs {
		in.Workflows, in.CacheRefs = workflows, cacheRefs
		in.Retention = func(ns string) time.Duration { return retention[ns] }
		res := Plan(in)
		for prefix, why := range res.Gone {
			s.Logger.Info("deleting the raw data of a workflow", "prefix", prefix, "why", why)
			total.Gone[prefix] = why
		}
		for _, uri := range res.Delete {
			if err := picked[i].Delete(ctx, uri); err != nil {
				return total, fmt.Errorf("delete %s: %w", uri, err)
			}
			deletedObjects.Inc()
			total.Delete = append(total.Delete, uri)
		}
		deletedBytes.Add(float64(res.Bytes))
		total.Bytes += res.Bytes
		total.Protected += res.Protected
		total.Recent += res.Recent
	}
	return total, nil
}

func cutNamespace(root, uri string) (string, string, bool) {
	if len(uri) <= len(root) || uri[:len(root)] != root {
		return "", "", false
	}
	rest := uri[len(root):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			return rest[:i], rest[i+1:], i > 0
		}
	}
	return "", "", false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
