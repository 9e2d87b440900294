package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/internal/nodeagent/backoff"
	"github.com/rotor-dev/rotor/internal/nodeagent/podstatus"
	"github.com/rotor-dev/rotor/internal/nodeagent/volume"
)

// imagePod runs one pod of the image runtime: its volumes, init
// containers then app containers, and the status that reflects them.
//
// The containers' statuses (init, apps) are guarded by mu and changed only
// through update; a single writer goroutine turns them into the pod
// status and writes it when it changed. Stopping is one-way: stop closes
// stopping (once) after setting deadline, and cancels ctx so pulls,
// back-offs, probes and token refreshes end.
type imagePod struct {
	rt  *imageRuntime
	pod *corev1.Pod // the spec as started, with status IPs filled
	dir string
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	stopMu   sync.Mutex
	stopping chan struct{}
	deadline time.Time // when SIGKILL follows SIGTERM; set before stopping closes
	// agentStop marks a stop because the agent stops: the pod's status is
	// left as it is for the next agent.
	agentStop atomic.Bool
	done      chan struct{}

	mu      sync.Mutex
	init    []corev1.ContainerStatus
	apps    []corev1.ContainerStatus
	base    corev1.PodStatus // the last status computed and written
	written bool
	changed chan struct{}
}

func newImagePod(rt *imageRuntime, p *corev1.Pod) (*imagePod, error) {
	ip := netip.MustParseAddr(hostIP)
	if !p.Spec.HostNetwork {
		prefer, _ := netip.ParseAddr(p.Status.PodIP) // the IP it had under a previous agent
		var err error
		if ip, err = rt.ips.Allocate(string(p.UID), p.Namespace+"/"+p.Name, prefer); err != nil {
			return nil, err
		}
	}
	now := metav1.Now()
	p.Status.HostIP, p.Status.HostIPs = hostIP, []corev1.HostIP{{IP: hostIP}}
	p.Status.PodIP, p.Status.PodIPs = ip.String(), []corev1.PodIP{{IP: ip.String()}}
	if p.Status.StartTime == nil {
		p.Status.StartTime = &now
	}
	w := &imagePod{
		rt: rt, pod: p, dir: podDir(rt.a.cfg.WorkDir, p),
		log:      rt.a.log.With("namespace", p.Namespace, "pod", p.Name, "podIP", ip.String()),
		stopping: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{}, 1),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.base = p.Status
	w.base.Phase, w.base.Reason, w.base.Message = corev1.PodPending, "", ""
	first := "ContainerCreating"
	if len(p.Spec.InitContainers) > 0 {
		first = "PodInitializing"
	}
	w.init = carried(p.Spec.InitContainers, p.Status.InitContainerStatuses, "PodInitializing")
	w.apps = carried(p.Spec.Containers, p.Status.ContainerStatuses, first)
	return w, nil
}

// carried starts each container waiting, with the restart count and last
// state it had under a previous agent, if any.
func carried(cs []corev1.Container, prev []corev1.ContainerStatus, reason string) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, len(cs))
	now := corev1.ContainerStateTerminated{FinishedAt: metav1.Now()}
	for i, c := range cs {
		out[i] = corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		for _, p := range prev {
			if p.Name == c.Name {
				out[i] = podstatus.Lost(p, "NodeAgentRestarted", now)
				out[i].Image = c.Image
			}
		}
		podstatus.Waiting(&out[i], reason, "")
	}
	return out
}

func (w *imagePod) run(ctx context.Context) {
	defer close(w.done)
	defer w.rt.ips.Release(string(w.pod.UID))
	defer w.cancel()
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan struct{})
	go func() { w.writeLoop(wctx); close(writerDone) }()
	w.notify()
	w.log.Info("pod starting")
	if vols := w.mountVolumes(); vols != nil {
		go w.rt.volumes.Refresh(w.ctx, w.pod, vols)
		if err := writeEtcFiles(w.dir, w.pod); err != nil {
			w.log.Error("write /etc files of the pod", "err", err)
		}
		if w.runInit(vols) {
			w.runApps(vols)
		}
	}
	stopWriter()
	<-writerDone
	if w.agentStop.Load() {
		return
	}
	if err := w.flush(ctx); err != nil {
		w.log.Warn("write final pod status failed", "err", err)
	}
	w.log.Info("pod finished", "dir", w.dir)
}

// mountVolumes renders the pod's volumes, retrying with back-off while
// one cannot be (a missing secret); nil when the pod stops first.
func (w *imagePod) mountVolumes() *volume.Pod {
	b := backoff.Backoff{Policy: w.rt.cfg.PullBackoff}
	for {
		start := time.Now()
		vols, err := w.rt.volumes.Render(w.ctx, w.pod, filepath.Join(w.dir, "volumes"))
		if err == nil {
			w.log.Debug("volumes mounted", "took", time.Since(start))
			return vols
		}
		if w.ctx.Err() != nil {
			return nil
		}
		w.log.Warn("mount volumes failed; retrying", "err", err)
		w.rt.a.event(w.pod, "", corev1.EventTypeWarning, "FailedMount", err.Error())
		w.updateAll(func(st *corev1.ContainerStatus) {
			if st.State.Waiting != nil { // all are, until the volumes are there
				podstatus.Waiting(st, st.State.Waiting.Reason, err.Error())
			}
		})
		if !w.sleep(max(b.Failed(0), w.rt.cfg.PullBackoff.Initial)) {
			return nil
		}
	}
}

// runInit runs the init containers in order and reports whether all
// succeeded.
func (w *imagePod) runInit(vols *volume.Pod) bool {
	for i := range w.pod.Spec.InitContainers {
		newContainerRun(w, true, i, vols).loop()
		w.mu.Lock()
		t := w.init[i].State.Terminated
		w.mu.Unlock()
		if t == nil || t.ExitCode != 0 {
			return false
		}
	}
	w.updateApps(func(st *corev1.ContainerStatus) { podstatus.Waiting(st, "ContainerCreating", "") })
	return true
}

func (w *imagePod) runApps(vols *volume.Pod) {
	var wg sync.WaitGroup
	for i := range w.pod.Spec.Containers {
		wg.Go(newContainerRun(w, false, i, vols).loop)
	}
	wg.Wait()
}

// stop starts a graceful stop: containers get SIGTERM now and SIGKILL
// after grace. It reports whether this call started it.
func (w *imagePod) stop(grace time.Duration) bool {
	w.stopMu.Lock()
	defer w.stopMu.Unlock()
	select {
	case <-w.stopping:
		return false
	default:
	}
	w.deadline = w.rt.cfg.Clock.Now().Add(grace)
	close(w.stopping)
	w.cancel()
	return true
}

// sleep waits d on the runtime's clock; false if the pod stops first.
func (w *imagePod) sleep(d time.Duration) bool {
	if d <= 0 {
		return w.ctx.Err() == nil
	}
	t := w.rt.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// update changes one container's status and wakes the writer.
func (w *imagePod) update(init bool, i int, fn func(*corev1.ContainerStatus)) {
	w.mu.Lock()
	if init {
		fn(&w.init[i])
	} else {
		fn(&w.apps[i])
	}
	w.mu.Unlock()
	w.notify()
}

func (w *imagePod) updateApps(fn func(*corev1.ContainerStatus)) {
	for i := range w.apps {
		w.update(false, i, fn)
	}
}

func (w *imagePod) updateAll(fn func(*corev1.ContainerStatus)) {
	for i := range w.init {
		w.update(true, i, fn)
	}
	w.updateApps(fn)
}

func (w *imagePod) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// writeEtcFiles writes the pod's /etc/hosts and /etc/hostname, mounted
// into each container like a kubelet's.
func writeEtcFiles(dir string, p *corev1.Pod) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := hostname(p)
	names := name
	if p.Spec.Subdomain != "" {
		names = fmt.Sprintf("%s.%s.%s.svc.cluster.local %s", name, p.Spec.Subdomain, p.Namespace, name)
	}
	hosts := fmt.Sprintf("# Kubernetes-managed hosts file (rotor node agent).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", p.Status.PodIP, names)
	if err := os.WriteFile(filepath.Join(dir, "etc-hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "etc-hostname"), []byte(name+"\n"), 0o644)
}

// hostname is the pod's hostname: spec.hostname or its name, cut to a
// DNS label.
func hostname(p *corev1.Pod) string {
	h := p.Spec.Hostname
	if h == "" {
		h = p.Name
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}
