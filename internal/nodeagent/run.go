package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/rotor-dev/rotor/internal/nodeagent/container"
	"github.com/rotor-dev/rotor/internal/nodeagent/nsexec"
)

// maxMessage is the kubelet's limit on a termination message.
const maxMessage = 4096

// podRun is one pod's processes.
type podRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// result is how one container ended.
type result struct {
	name     string
	exitCode int32
	reason   string
	message  string
	started  metav1.Time
	finished metav1.Time
}

func (a *Agent) sync(ctx context.Context, p *corev1.Pod) {
	if a.img != nil {
		a.img.sync(ctx, p)
		return
	}
	if p.DeletionTimestamp != nil {
		a.kill(p)
		go a.forget(ctx, p)
		return
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return
	}
	a.mu.Lock()
	_, known := a.running[p.UID]
	if known || p.Status.Phase == corev1.PodRunning {
		a.mu.Unlock()
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	r := &podRun{cancel: cancel, done: make(chan struct{})}
	a.running[p.UID] = r
	a.mu.Unlock()
	go a.run(runCtx, p.DeepCopy(), r)
}

// forget completes a graceful deletion the way a kubelet does: once the
// processes are gone, delete with grace 0, guarded by the pod's UID.
func (a *Agent) forget(ctx context.Context, p *corev1.Pod) {
	zero := int64(0)
	err := a.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: metav1.NewUIDPreconditions(string(p.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		a.log.Warn("delete pod failed", "namespace", p.Namespace, "pod", p.Name, "err", err)
	}
	a.mu.Lock()
	delete(a.running, p.UID)
	a.mu.Unlock()
}

func (a *Agent) kill(p *corev1.Pod) {
	a.mu.Lock()
	r := a.running[p.UID]
	a.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

func (a *Agent) killAll() {
	if a.img != nil {
		a.img.stopAll()
		return
	}
	a.mu.Lock()
	runs := make([]*podRun, 0, len(a.running))
	for _, r := range a.running {
		runs = append(runs, r)
	}
	a.mu.Unlock()
	for _, r := range runs {
		r.cancel()
		<-r.done
	}
}

func (a *Agent) run(ctx context.Context, p *corev1.Pod, r *podRun) {
	defer close(r.done)
	log := a.log.With("namespace", p.Namespace, "pod", p.Name)
	dir := podDir(a.cfg.WorkDir, p)
	vols, err := emptyDirs(p, dir)
	if err != nil {
		log.Warn("pod volumes", "err", err)
		a.finish(context.WithoutCancel(ctx), p, nil, "VolumeError", err.Error())
		return
	}
	if err := a.markRunning(ctx, p); err != nil {
		log.Warn("mark pod running failed", "err", err)
		return
	}
	var results []result
	var sidecars []*sidecar
	stopSidecars := func() {
		// Reverse order, as a kubelet stops them, each given the pod's
		// grace period to finish (the data agent uploads then).
		for i := len(sidecars) - 1; i >= 0; i-- {
			results = append(results, sidecars[i].stop(gracePeriod(p)))
		}
	}
	for _, c := range p.Spec.InitContainers {
		if isSidecar(c) {
			sc := a.startSidecar(ctx, p, c, dir, vols)
			sidecars = append(sidecars, sc)
			// The next container starts once this one has started: its
			// startupProbe passed, or (without one) its process runs.
			if err := a.waitStarted(ctx, p, c, dir, vols); err != nil {
				stopSidecars()
				if ctx.Err() == nil {
					a.finish(context.WithoutCancel(ctx), p, results, "SidecarNotStarted", err.Error())
				}
				return
			}
			continue
		}
		res := a.runContainer(ctx, p, c, dir, vols)
		results = append(results, res)
		if res.exitCode != 0 {
			stopSidecars()
			a.finish(context.WithoutCancel(ctx), p, results, "", "")
			return
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range p.Spec.Containers {
		wg.Go(func() {
			res := a.runContainer(ctx, p, c, dir, vols)
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		stopSidecars()
		return // deleted: the pod is going away, its status does not matter
	}
	stopSidecars()
	a.finish(context.WithoutCancel(ctx), p, results, "", "")
	log.Info("pod finished", "dir", dir)
}

// isSidecar reports whether c is a native sidecar: an init container
// with restartPolicy Always, started in order with the others and kept
// running beside the main containers.
func isSidecar(c corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// emptyDirs creates the pod's emptyDir volumes under its directory and
// returns their paths by volume name. The process runtime has no other
// volume kinds: containers see the node's files anyway.
func emptyDirs(p *corev1.Pod, podDir string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir == nil {
			continue
		}
		d := filepath.Join(podDir, "volumes", v.Name)
		if err := os.MkdirAll(d, 0o777); err != nil {
			return nil, fmt.Errorf("emptyDir %s: %w", v.Name, err)
		}
		out[v.Name] = d
	}
	return out, nil
}

// sidecar is a running native sidecar: restarted when it exits while the
// main containers run, stopped with SIGTERM once they are done.
type sidecar struct {
	name     string
	stopping chan struct{}
	done     chan result
}

func (a *Agent) startSidecar(ctx context.Context, p *corev1.Pod, c corev1.Container, podDir string, vols map[string]string) *sidecar {
	s := &sidecar{name: c.Name, stopping: make(chan struct{}), done: make(chan result, 1)}
	go func() {
		for {
			res := a.runContainerUntil(ctx, p, c, podDir, vols, s.stopping)
			select {
			case <-s.stopping:
				s.done <- res
				return
			case <-ctx.Done():
				s.done <- res
				return
			case <-time.After(time.Second): // restartPolicy Always
				a.log.Info("sidecar exited while the pod runs; restarting it", "namespace", p.Namespace, "pod", p.Name, "container", c.Name, "exitCode", res.exitCode)
			}
		}
	}()
	return s
}

// waitStarted runs c's exec postStart hook to its end, then its exec
// startupProbe, as a kubelet would, until it
// passes: every periodSeconds (the first at once), each within
// timeoutSeconds, failing after failureThreshold failures. A kubelet
// would restart the container then and keep the pod initializing for
// ever; a task pod rather fails, with the reason. Without a probe the
// sidecar counts as started at once. Only exec probes are run (the
// process runtime gives pods no network of their own to probe).
func (a *Agent) waitStarted(ctx context.Context, p *corev1.Pod, c corev1.Container, podDir string, vols map[string]string) error {
	if h := c.Lifecycle; h != nil && h.PostStart != nil && h.PostStart.Exec != nil && len(h.PostStart.Exec.Command) > 0 {
		// A kubelet starts the next container only once the sidecar's
		// postStart hook has returned; one that fails kills the
		// container (here: fails the pod, as a failing startup probe).
		hook := c
		hook.Name = c.Name + "-post-start"
		hook.Command, hook.Args = h.PostStart.Exec.Command, nil
		if res := a.runContainerUntil(ctx, p, hook, podDir, vols, nil); res.exitCode != 0 {
			return fmt.Errorf("sidecar %s did not start: its postStart hook exited %d %s", c.Name, res.exitCode, strings.TrimSpace(res.message))
		}
	}
	pr := c.StartupProbe
	if pr == nil || pr.Exec == nil || len(pr.Exec.Command) == 0 {
		return nil
	}
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	threshold := max(pr.FailureThreshold, 1)
	if pr.FailureThreshold == 0 {
		threshold = 3
	}
	probe := c
	probe.Name = c.Name + "-startup-probe"
	probe.Command, probe.Args = pr.Exec.Command, nil
	var last result
	for i := int32(0); i < threshold; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(period):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		last = a.runContainerUntil(pctx, p, probe, podDir, vols, nil)
		cancel()
		if last.exitCode == 0 {
			return nil
		}
	}
	return fmt.Errorf("sidecar %s did not start: its startupProbe failed %d times (last: exit %d %s)", c.Name, threshold, last.exitCode, strings.TrimSpace(last.message))
}

// stop asks the sidecar to end (SIGTERM, then SIGKILL after grace) and
// returns how it ended.
func (s *sidecar) stop(grace time.Duration) result {
	close(s.stopping)
	select {
	case res := <-s.done:
		return res
	case <-time.After(grace + 5*time.Second):
		return result{name: s.name, exitCode: 137, reason: "Error", message: "sidecar did not stop", finished: metav1.Now()}
	}
}

func (a *Agent) runContainer(ctx context.Context, p *corev1.Pod, c corev1.Container, podDir string, vols map[string]string) result {
	return a.runContainerUntil(ctx, p, c, podDir, vols, nil)
}

// runContainerUntil runs one container to its end. Closing stop sends it
// SIGTERM, and SIGKILL after the pod's grace period; cancelling ctx kills
// it at once (the pod was deleted).
func (a *Agent) runContainerUntil(ctx context.Context, p *corev1.Pod, c corev1.Container, podDir string, vols map[string]string, stop <-chan struct{}) result {
	res := result{name: c.Name, started: metav1.Now()}
	dir := filepath.Join(podDir, c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res.fail(128, "StartError", err.Error())
	}
	outFile := filepath.Join(dir, "output")
	_ = os.Remove(outFile) // a restarted sidecar's message is its last run's
	env, err := a.containerEnv(ctx, p, c, outFile)
	if err != nil {
		// A kubelet holds such a pod Pending; ending the container says
		// the same thing to Rotor without a pod that never finishes.
		return res.fail(128, "CreateContainerConfigError", err.Error())
	}
	argv := make([]string, 0, len(c.Command)+len(c.Args))
	for _, s := range append(append([]string{}, c.Command...), c.Args...) {
		argv = append(argv, container.ExpandVars(s, env))
	}
	if len(argv) == 0 {
		return res.fail(128, "StartError", "the process runtime needs a command: the image's entrypoint is not known without a container runtime")
	}
	var mounts []nsexec.Mount
	for _, m := range c.VolumeMounts {
		if src, ok := vols[m.Name]; ok {
			if m.SubPath != "" {
				src = filepath.Join(src, filepath.Clean("/"+m.SubPath))
				_ = os.MkdirAll(src, 0o777)
			}
			mounts = append(mounts, nsexec.Mount{Source: src, Target: m.MountPath, ReadOnly: m.ReadOnly})
		}
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return res.fail(128, "StartError", err.Error())
	}
	defer logf.Close()
	workDir := dir
	if c.WorkingDir != "" {
		if st, err := os.Stat(c.WorkingDir); err == nil && st.IsDir() {
			workDir = c.WorkingDir
		}
	}
	proc, err := a.startProcess(argv, flatten(env), workDir, mounts, filepath.Join(dir, "spec.json"), logf)
	if err != nil {
		var se *nsexec.StartError
		if errors.As(err, &se) {
			return res.fail(128, "StartError", se.Msg)
		}
		return res.fail(128, "StartError", fmt.Sprintf("start %s: %v", argv[0], err))
	}
	var killAt <-chan time.Time
	for done := false; !done; {
		select {
		case <-proc.Done():
			done = true
		case <-ctx.Done():
			_ = proc.Signal(syscall.SIGKILL)
			<-proc.Done()
			done = true
		case <-stop:
			_ = proc.Signal(syscall.SIGTERM)
			killAt, stop = time.After(gracePeriod(p)), nil
		case <-killAt:
			_ = proc.Signal(syscall.SIGKILL)
		}
	}
	res.finished = metav1.Now()
	res.message = readMessage(outFile)
	if code := proc.ExitCode(); code == 0 {
		res.exitCode, res.reason = 0, "Completed"
	} else {
		res.exitCode, res.reason = code, "Error"
	}
	return res
}

// process is a started container process.
type process interface {
	Signal(syscall.Signal) error
	Done() <-chan struct{}
	ExitCode() int32
}

// startProcess starts argv. A container with volumes runs through the
// mount-namespace helper (nsexec, HostRoot) so that its mounts are its
// own; one without runs as a plain child.
func (a *Agent) startProcess(argv, env []string, dir string, mounts []nsexec.Mount, specFile string, log *os.File) (process, error) {
	if len(mounts) > 0 {
		helper, err := os.Executable()
		if err != nil {
			return nil, err
		}
		spec := &nsexec.Spec{HostRoot: true, Mounts: mounts, Argv: argv, Env: env, Dir: dir}
		return nsexec.Start(helper, spec, specFile, log)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pr := &plainProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(pr.done)
	}()
	return pr, nil
}

// plainProcess is a child run without its own mount namespace.
type plainProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *plainProcess) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func (p *plainProcess) Done() <-chan struct{} { return p.done }

// ExitCode is the exit status after Done; 137 for a death by SIGKILL,
// 128+n for signal n, as a container runtime reports it.
func (p *plainProcess) ExitCode() int32 {
	st := p.cmd.ProcessState
	if st == nil {
		return 128
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(st.ExitCode())
}

func (r result) fail(code int32, reason, msg string) result {
	r.exitCode, r.reason, r.message, r.finished = code, reason, msg, metav1.Now()
	return r
}

func readMessage(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > maxMessage {
		b = b[:maxMessage]
	}
	return string(b)
}

// containerEnv is the process's environment: PATH and HOME of the agent,
// then the container's env computed as a kubelet does (valueFrom fields,
// ConfigMap and Secret keys read from the apiserver), then the output file.
func (a *Agent) containerEnv(ctx context.Context, p *corev1.Pod, c corev1.Container, outFile string) (map[string]string, error) {
	vars, err := container.Env(ctx, container.EnvInput{Pod: p, Container: &c, Sources: apiSources{a},
		Service: []container.Var{{Name: "PATH", Value: os.Getenv("PATH")}, {Name: "HOME", Value: os.Getenv("HOME")}}})
	if err != nil {
		return nil, err
	}
	env := container.Map(vars)
	env["ROTOR_OUTPUT_FILE"] = outFile
	return env, nil
}

func flatten(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func (a *Agent) markRunning(ctx context.Context, p *corev1.Pod) error {
	now := metav1.Now()
	return a.updateStatus(ctx, p, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodRunning
		s.StartTime = &now
		s.HostIP, s.PodIP = "127.0.0.1", "127.0.0.1"
		s.Conditions = []corev1.PodCondition{
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		s.ContainerStatuses = nil
		for _, c := range p.Spec.Containers {
			s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, Ready: true, Started: ptr(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
	})
}

// finish writes the terminal status. With no results (the process was
// lost), every container is reported terminated with reason.
func (a *Agent) finish(ctx context.Context, p *corev1.Pod, results []result, reason, message string) {
	byName := map[string]result{}
	for _, r := range results {
		byName[r.name] = r
	}
	err := a.updateStatus(ctx, p, func(s *corev1.PodStatus) {
		phase := corev1.PodSucceeded
		now := metav1.Now()
		s.ContainerStatuses, s.InitContainerStatuses = nil, nil
		for _, c := range p.Spec.InitContainers {
			if r, ok := byName[c.Name]; ok {
				s.InitContainerStatuses = append(s.InitContainerStatuses, terminated(c, r))
			}
		}
		for _, c := range p.Spec.Containers {
			r, ok := byName[c.Name]
			if !ok {
				r = result{name: c.Name, exitCode: 137, reason: reason, message: message, started: now, finished: now}
				if reason == "" {
					r.reason, r.message = "ContainerNotRun", "an init container failed"
				}
			}
			if r.exitCode != 0 {
				phase = corev1.PodFailed
			}
			s.ContainerStatuses = append(s.ContainerStatuses, terminated(c, r))
		}
		s.Phase = phase
		s.Reason, s.Message = reason, message
		for i := range s.Conditions {
			if s.Conditions[i].Type == corev1.PodReady || s.Conditions[i].Type == corev1.ContainersReady {
				s.Conditions[i].Status, s.Conditions[i].Reason = corev1.ConditionFalse, "PodCompleted"
			}
		}
	})
	if err != nil {
		a.log.Warn("write final pod status failed", "namespace", p.Namespace, "pod", p.Name, "err", err)
	}
}

func terminated(c corev1.Container, r result) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, Started: ptr(false),
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: r.exitCode, Reason: r.reason, Message: r.message,
			StartedAt: r.started, FinishedAt: r.finished,
		}},
	}
}

func (a *Agent) updateStatus(ctx context.Context, p *corev1.Pod, mutate func(*corev1.PodStatus)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := a.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != p.UID {
			return nil // replaced by a new pod of the same name
		}
		mutate(&cur.Status)
		_, err = a.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func ptr[T any](v T) *T { return &v }
