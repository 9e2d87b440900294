package shard

import (
	"sync"

	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// activeSet tracks the Workflows of one namespace that have not ended,
// from informer events, so reporting load costs no list. Safe for
// concurrent use.
type activeSet struct {
	mu    sync.Mutex
	names map[string]struct{}
}

func newActiveSet() *activeSet { return &activeSet{names: map[string]struct{}{}} }

// observe records an added or updated Workflow.
func (s *activeSet) observe(obj any) {
	wf, ok := obj.(*v1alpha1.Workflow)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if wf.Status.Phase.IsTerminal() {
		delete(s.names, wf.Name)
	} else {
		s.names[wf.Name] = struct{}{}
	}
}

// forget records a deleted Workflow, tombstones included.
func (s *activeSet) forget(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	wf, ok := obj.(*v1alpha1.Workflow)
	if !ok {
		return
	}
	s.mu.Lock()
	delete(s.names, wf.Name)
	s.mu.Unlock()
}

func (s *activeSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.names)
}
