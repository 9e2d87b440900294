package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/internal/nodeagent/image"
	"github.com/rotor-dev/rotor/internal/nodeagent/podip"
	"github.com/rotor-dev/rotor/internal/nodeagent/volume"
)

// hostIP is every pod's status.hostIP: the node is this machine.
const hostIP = "127.0.0.1"

// forceDeleteGrace is what containers of a pod that vanished without a
// graceful deletion (grace 0, a force delete) get before SIGKILL.
const forceDeleteGrace = 2 * time.Second

// imageRuntime runs pods from their images. It owns one imagePod per pod
// it has started; pods maps UID to it until the pod is deleted.
type imageRuntime struct {
	a       *Agent
	cfg     imageSettings
	store   *image.Store
	ips     *podip.Allocator
	volumes *volume.Renderer

	mu   sync.Mutex
	pods map[types.UID]*imagePod
	// lost holds pods found running under a previous agent and being
	// failed, so repeated informer events fail them once.
	lost map[types.UID]bool
}

func newImageRuntime(a *Agent, c ImageConfig) (*imageRuntime, error) {
	cfg, err := c.settings(a.cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the image runtime needs root (mount namespaces, chroot, setuid): run the agent as root or use the process runtime")
	}
	store, err := image.New(image.Options{Dir: cfg.ImageDir, InsecureRegistries: cfg.InsecureRegistries})
	if err != nil {
		return nil, err
	}
	ips, err := podip.New(cfg.podCIDR, netip.MustParseAddr(hostIP))
	if err != nil {
		return nil, err
	}
	rt := &imageRuntime{a: a, cfg: cfg, store: store, ips: ips, pods: map[types.UID]*imagePod{}, lost: map[types.UID]bool{}}
	rt.volumes = &volume.Renderer{Client: a.client, Clock: cfg.Clock, Allocatable: allocatable,
		OnError: func(err error) { a.log.Warn("service account token refresh failed; retrying", "err", err) }}
	return rt, nil
}

// sync reacts to a pod of this node: start it, or stop it when deleted.
// It never blocks on a pod: the informer's handler must stay quick.
func (rt *imageRuntime) sync(ctx context.Context, p *corev1.Pod) {
	if p.DeletionTimestamp != nil {
		rt.terminate(ctx, p)
		return
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, known := rt.pods[p.UID]; known || rt.lost[p.UID] {
		return
	}
	if p.Status.Phase == corev1.PodRunning && p.Spec.RestartPolicy == corev1.RestartPolicyNever {
		rt.lost[p.UID] = true
		// Left running by a previous agent: its containers died with it,
		// and under Never a lost container is a failed one.
		go rt.a.finish(context.WithoutCancel(ctx), p, nil, "NodeAgentRestarted", "the node agent restarted and the container was lost")
		return
	}
	w, err := newImagePod(rt, p.DeepCopy())
	if err != nil {
		rt.a.log.Error("cannot start pod", "namespace", p.Namespace, "pod", p.Name, "err", err)
		return
	}
	rt.pods[p.UID] = w
	go w.run(context.WithoutCancel(ctx))
}

// terminate stops a deleted pod's containers within its grace period,
// then completes the deletion as a kubelet does.
func (rt *imageRuntime) terminate(ctx context.Context, p *corev1.Pod) {
	rt.mu.Lock()
	w := rt.pods[p.UID]
	rt.mu.Unlock()
	if w == nil {
		go func() {
			rt.a.forget(context.WithoutCancel(ctx), p)
			rt.remove(p.UID)
		}()
		return
	}
	if !w.stop(gracePeriod(p)) {
		return // already terminating
	}
	go func() {
		<-w.done
		rt.a.forget(context.WithoutCancel(ctx), p)
		rt.remove(p.UID)
	}()
}

// deleted handles a pod that vanished from the API (force-deleted).
func (rt *imageRuntime) deleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	rt.mu.Lock()
	w := rt.pods[p.UID]
	rt.mu.Unlock()
	if w != nil && w.stop(forceDeleteGrace) {
		go func() { <-w.done; rt.remove(p.UID) }()
	}
}

func (rt *imageRuntime) remove(uid types.UID) {
	rt.mu.Lock()
	delete(rt.pods, uid)
	delete(rt.lost, uid)
	rt.mu.Unlock()
}

// stopAll stops every container when the agent stops, each pod within its
// grace period capped by ShutdownGrace. Pods keep their API status; the
// next agent on this node starts them again.
func (rt *imageRuntime) stopAll() {
	rt.mu.Lock()
	pods := make([]*imagePod, 0, len(rt.pods))
	for _, w := range rt.pods {
		pods = append(pods, w)
	}
	rt.mu.Unlock()
	for _, w := range pods {
		w.agentStop.Store(true)
		w.stop(min(gracePeriod(w.pod), rt.cfg.ShutdownGrace))
	}
	for _, w := range pods {
		<-w.done
	}
}

// gracePeriod is how long a deleted pod's containers get between SIGTERM
// and SIGKILL.
func gracePeriod(p *corev1.Pod) time.Duration {
	switch {
	case p.DeletionGracePeriodSeconds != nil:
		return time.Duration(*p.DeletionGracePeriodSeconds) * time.Second
	case p.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

func (rt *imageRuntime) String() string {
	return fmt.Sprintf("image runtime (images %s, pod CIDR %s)", rt.cfg.ImageDir, rt.cfg.podCIDR)
}
