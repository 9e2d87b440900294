package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	rotorinformers "github.com/rotor-dev/rotor/controller/generated/informers/externalversions"
	"github.com/rotor-dev/rotor/e2e/harness"
)

// counter counts objects that reached an end, as a watch reports them:
// polling lists of thousands of objects would load the apiservers the
// benchmark measures.
type counter struct {
	mu    sync.Mutex
	done  map[string]bool
	ok    int
	last  time.Time
	bump  chan struct{}
	close func()
}

func newCounter() *counter { return &counter{done: map[string]bool{}, bump: make(chan struct{}, 1)} }

func (c *counter) see(key string, ended, ok bool) {
	if !ended {
		return
	}
	c.mu.Lock()
	if !c.done[key] {
		c.done[key] = true
		c.last = time.Now()
		if ok {
			c.ok++
		}
	}
	c.mu.Unlock()
	select {
	case c.bump <- struct{}{}:
	default:
	}
}

// wait returns when n objects have ended (and when the last did), or
// fails after timeout.
func (c *counter) wait(n int, timeout time.Duration) (time.Time, int, error) {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got, ok, last := len(c.done), c.ok, c.last
		c.mu.Unlock()
		if got >= n {
			return last, ok, nil
		}
		select {
		case <-c.bump:
		case <-deadline:
			return time.Time{}, ok, fmt.Errorf("%d of %d ended after %s", got, n, timeout)
		}
	}
}

// watchRun counts the workflows labelled with run that ended.
func watchRun(env *harness.Env, run string) (*counter, error) {
	c := newCounter()
	f := rotorinformers.NewSharedInformerFactoryWithOptions(env.Rotor, 0,
		rotorinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = labelRun + "=" + run }))
	return c, c.follow(f, f.Rotor().V1alpha1().Workflows().Informer(), func(o any) {
		if wf, ok := o.(*v1alpha1.Workflow); ok {
			c.see(wf.Namespace+"/"+wf.Name, wf.Status.Phase.IsTerminal(), wf.Status.Phase == v1alpha1.WorkflowSucceeded)
		}
	})
}

// watchPods counts the pods of namespace ns in a target that ended.
func watchPods(kc kubernetes.Interface, ns string) (*counter, error) {
	c := newCounter()
	f := informers.NewSharedInformerFactoryWithOptions(kc, 0, informers.WithNamespace(ns))
	return c, c.follow(f, f.Core().V1().Pods().Informer(), func(o any) {
		if p, ok := o.(*corev1.Pod); ok {
			end := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
			c.see(p.Name, end, p.Status.Phase == corev1.PodSucceeded)
		}
	})
}

// follow feeds inf's adds and updates to handle, starts the factory and
// waits for the first list; c.close stops it.
func (c *counter) follow(f interface{ Start(<-chan struct{}) }, inf cache.SharedIndexInformer, handle func(any)) error {
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, o any) { handle(o) }})
	stop := make(chan struct{})
	c.close = func() { close(stop) }
	f.Start(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		c.close()
		return fmt.Errorf("watch did not sync in 30 s")
	}
	return nil
}
