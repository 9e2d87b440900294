package nodeagent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/internal/nodeagent/backoff"
	"github.com/rotor-dev/rotor/internal/nodeagent/image"
	"github.com/rotor-dev/rotor/internal/nodeagent/nsexec"
	"github.com/rotor-dev/rotor/internal/nodeagent/podstatus"
	"github.com/rotor-dev/rotor/internal/nodeagent/volume"
)

// containerRun is one container of an imagePod across its restarts: pull,
// prepare, start, supervise (probes), record the exit, back off, again.
// Only its own goroutine uses it.
type containerRun struct {
	w     *imagePod
	init  bool
	idx   int
	spec  *corev1.Container
	vols  *volume.Pod
	dir   string
	log   *slog.Logger
	clock clock.Clock
	// runs counts this worker's starts: all but the first are restarts.
	runs                    int
	restarts, pulls, config backoff.Backoff
}

func newContainerRun(w *imagePod, init bool, i int, vols *volume.Pod) *containerRun {
	spec := &w.pod.Spec.Containers[i]
	if init {
		spec = &w.pod.Spec.InitContainers[i]
	}
	cfg := w.rt.cfg
	return &containerRun{
		w: w, init: init, idx: i, spec: spec, vols: vols, dir: filepath.Join(w.dir, spec.Name),
		log: w.log.With("container", spec.Name), clock: cfg.Clock,
		restarts: backoff.Backoff{Policy: cfg.RestartBackoff}, pulls: backoff.Backoff{Policy: cfg.PullBackoff},
		config: backoff.Backoff{Policy: cfg.PullBackoff},
	}
}

// loop runs the container until it ends for good (by restart policy) or
// the pod stops.
func (c *containerRun) loop() {
	for {
		img, ok := c.pull()
		if !ok {
			return
		}
		spec, err := c.prepare(img)
		if err != nil {
			if !c.configError(err) {
				return
			}
			continue
		}
		exit := c.runOnce(img, spec)
		if c.w.ctx.Err() != nil || !c.shouldRestart(exit.ExitCode) {
			return
		}
		if !c.backOff(exit) {
			return
		}
	}
}

// pull gets the image, showing ErrImagePull then ImagePullBackOff while it
// retries like a kubelet; false if the pod stops first.
func (c *containerRun) pull() (*image.Image, bool) {
	for {
		start := time.Now()
		img, err := c.w.rt.store.Pull(c.w.ctx, c.spec.Image, c.spec.ImagePullPolicy)
		if err == nil {
			c.log.Debug("image ready", "image", img.ID, "took", time.Since(start))
			c.pulls.Reset()
			return img, true
		}
		if c.w.ctx.Err() != nil {
			return nil, false
		}
		reason := "ErrImagePull"
		var pe *image.PullError
		if errors.As(err, &pe) {
			reason = pe.Reason
		}
		c.log.Warn("pull image failed", "image", c.spec.Image, "err", err)
		c.setWaiting(reason, err.Error())
		c.event(corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %v", c.spec.Image, err))
		wait := max(c.pulls.Failed(0), c.w.rt.cfg.PullBackoff.Initial)
		if !c.w.sleep(wait / 2) {
			return nil, false
		}
		if reason == "ErrImagePull" {
			c.setWaiting("ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q: %v", c.spec.Image, err))
			c.event(corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.spec.Image))
		}
		if !c.w.sleep(wait - wait/2) {
			return nil, false
		}
	}
}

// configError shows a container that cannot be configured (a missing
// secret key, runAsNonRoot with uid 0) and waits to try again.
func (c *containerRun) configError(err error) bool {
	c.log.Warn("container config error", "err", err)
	c.setWaiting("CreateContainerConfigError", err.Error())
	c.event(corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
	return c.w.sleep(max(c.config.Failed(0), c.w.rt.cfg.PullBackoff.Initial))
}

// runOnce starts the container and supervises it until it exits.
func (c *containerRun) runOnce(img *image.Image, spec *nsexec.Spec) corev1.ContainerStateTerminated {
	id := fmt.Sprintf("rotor://%s-%s-%d", string(c.w.pod.UID)[:8], c.spec.Name, c.runs)
	started := metav1.Now()
	proc, err := c.start(spec)
	if err != nil {
		exit := corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: started, FinishedAt: metav1.Now(), ContainerID: id}
		c.log.Warn("container start failed", "err", err)
		c.event(corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		c.update(func(st *corev1.ContainerStatus) { podstatus.Terminated(st, exit) })
		c.runs++
		return exit
	}
	started = metav1.NewTime(proc.Started)
	restarted := c.runs > 0
	c.runs++
	c.update(func(st *corev1.ContainerStatus) {
		podstatus.Running(st, corev1.ContainerStateRunning{StartedAt: started}, id, img.ID, restarted)
	})
	c.log.Info("container started", "image", img.ID)
	c.event(corev1.EventTypeNormal, "Started", "Started container "+c.spec.Name)
	exit := c.supervise(proc)
	exit.StartedAt, exit.ContainerID = started, id
	c.log.Info("container exited", "exitCode", exit.ExitCode, "reason", exit.Reason)
	c.update(func(st *corev1.ContainerStatus) { podstatus.Terminated(st, exit) })
	return exit
}

func (c *containerRun) start(spec *nsexec.Spec) (*nsexec.Process, error) {
	if err := os.MkdirAll(spec.Scratch, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.messageFile(), nil, 0o666); err != nil {
		return nil, err
	}
	if err := os.Chmod(c.messageFile(), 0o666); err != nil { // writable by any container user
		return nil, err
	}
	logf, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	return nsexec.Start(c.w.rt.cfg.Helper, spec, filepath.Join(c.dir, "spec.json"), logf)
}

// supervise runs the probes and waits for the process to exit, killing
// it gracefully when a probe says so or the pod stops.
func (c *containerRun) supervise(proc *nsexec.Process) corev1.ContainerStateTerminated {
	kill := make(chan string, 1)
	stopProbes := c.startProbes(kill)
	select {
	case <-proc.Done():
	case why := <-kill:
		c.terminate(proc, c.clock.Now().Add(c.probeGrace()), why)
	case <-c.w.stopping:
		c.terminate(proc, c.w.deadline, "Stopping container "+c.spec.Name)
	}
	stopProbes()
	code := proc.ExitCode()
	exit := corev1.ContainerStateTerminated{ExitCode: code, Reason: "Error", FinishedAt: metav1.Now()}
	if code == 0 {
		exit.Reason = "Completed"
	}
	exit.Message = c.terminationMessage(code)
	return exit
}

// terminate sends SIGTERM, then SIGKILL at deadline if the process is
// still there: the container's chance to drain. The event (why) is
// recorded after the signal so an API round trip does not eat the grace.
func (c *containerRun) terminate(proc *nsexec.Process, deadline time.Time, why string) {
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		c.log.Warn("SIGTERM failed", "err", err)
	}
	c.log.Info("stopping container", "why", why, "grace", deadline.Sub(c.clock.Now()).Round(time.Millisecond))
	c.event(corev1.EventTypeNormal, "Killing", why)
	t := c.clock.NewTimer(deadline.Sub(c.clock.Now()))
	defer t.Stop()
	select {
	case <-proc.Done():
		return
	case <-t.C():
	}
	c.log.Warn("container did not stop within its grace period; killing it")
	_ = proc.Signal(syscall.SIGKILL)
	<-proc.Done()
}

// backOff waits before a restart (CrashLoopBackOff); false if the pod
// stops first.
func (c *containerRun) backOff(exit corev1.ContainerStateTerminated) bool {
	wait := c.restarts.Failed(exit.FinishedAt.Sub(exit.StartedAt.Time))
	if wait <= 0 {
		return true
	}
	c.setWaiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", wait, c.spec.Name, c.w.pod.Name, c.w.pod.Namespace, c.w.pod.UID))
	c.event(corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container "+c.spec.Name)
	return c.w.sleep(wait)
}

// shouldRestart applies the restart policy; init containers of an Always
// pod restart only on failure, as in a kubelet.
func (c *containerRun) shouldRestart(code int32) bool {
	switch c.w.pod.Spec.RestartPolicy {
	case corev1.RestartPolicyAlways:
		return !c.init || code != 0
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return false
}

// probeGrace is how long a container failing its liveness probe gets
// after SIGTERM.
func (c *containerRun) probeGrace() time.Duration {
	for _, p := range []*corev1.Probe{c.spec.LivenessProbe, c.spec.StartupProbe} {
		if p != nil && p.TerminationGracePeriodSeconds != nil {
			return time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
		}
	}
	if s := c.w.pod.Spec.TerminationGracePeriodSeconds; s != nil {
		return time.Duration(*s) * time.Second
	}
	return 30 * time.Second
}

func (c *containerRun) update(fn func(*corev1.ContainerStatus)) { c.w.update(c.init, c.idx, fn) }

func (c *containerRun) setWaiting(reason, msg string) {
	c.update(func(st *corev1.ContainerStatus) { podstatus.Waiting(st, reason, msg) })
}

func (c *containerRun) event(typ, reason, msg string) {
	c.w.rt.a.event(c.w.pod, c.spec.Name, typ, reason, msg)
}

func (c *containerRun) logFile() string     { return filepath.Join(c.dir, "log") }
func (c *containerRun) messageFile() string { return filepath.Join(c.dir, "termination-log") }
