package propeller

import (
	"sync"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// freshCopies keeps, per workflow, the object this controller last wrote
// while its informer cache still shows an older version. A round that
// reads the cache soon after its own write (a pod event arrives before
// the write's watch event) would otherwise work on the version the write
// replaced and lose its status write to a conflict: one wasted PUT and a
// repeated round. Under load, and with several replicas sharing the
// apiserver, that was 0.2 extra PUTs per node.
//
// resourceVersions are opaque, so nothing compares them by order: the
// entry remembers the exact versions its writes replaced. A cached object
// at one of those is stale and the written copy is used instead; at any
// other version (our write seen, or someone else's newer write) the cache
// wins and the entry is dropped. Either way the status write stays a
// compare-and-swap, so a copy that was overtaken only costs the conflict
// it would have cost anyway.
type freshCopies struct {
	mu sync.Mutex
	m  map[string]*freshCopy
}

type freshCopy struct {
	obj      *v1alpha1.Workflow // as the apiserver returned it
	replaced map[string]bool    // resourceVersions our writes replaced
}

func newFreshCopies() *freshCopies { return &freshCopies{m: map[string]*freshCopy{}} }

// newest returns the object a round of key should work on: the cached
// one, or our newer written copy while the cache still shows a version
// our writes replaced. The copy is shared: callers must not modify it.
func (f *freshCopies) newest(key string, cached *v1alpha1.Workflow) *v1alpha1.Workflow {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.m[key]
	if c == nil {
		return cached
	}
	if c.replaced[cached.ResourceVersion] && c.obj.UID == cached.UID {
		return c.obj
	}
	delete(f.m, key)
	return cached
}

// wrote records that a write based on an object at version from returned
// obj.
func (f *freshCopies) wrote(key, from string, obj *v1alpha1.Workflow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.m[key]
	if c == nil || c.obj.UID != obj.UID {
		c = &freshCopy{replaced: map[string]bool{}}
		f.m[key] = c
	}
	c.obj = obj
	c.replaced[from] = true
}

// forget drops key (the workflow is gone or no longer ours).
func (f *freshCopies) forget(key string) {
	f.mu.Lock()
	delete(f.m, key)
	f.mu.Unlock()
}

func (f *freshCopies) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
