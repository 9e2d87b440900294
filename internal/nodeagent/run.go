package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/rotor-dev/rotor/internal/nodeagent/container"
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
	if err := a.markRunning(ctx, p); err != nil {
		log.Warn("mark pod running failed", "err", err)
		return
	}
	var results []result
	for _, c := range p.Spec.InitContainers {
		res := a.runContainer(ctx, p, c, dir)
		results = append(results, res)
		if res.exitCode != 0 {
			a.finish(context.WithoutCancel(ctx), p, results, "", "")
			return
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range p.Spec.Containers {
		wg.Go(func() {
			res := a.runContainer(ctx, p, c, dir)
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // deleted: the pod is going away, its status does not matter
	}
	a.finish(context.WithoutCancel(ctx), p, results, "", "")
	log.Info("pod finished", "dir", dir)
}

func (a *Agent) runContainer(ctx context.Context, p *corev1.Pod, c corev1.Container, podDir string) result {
	res := result{name: c.Name, started: metav1.Now()}
	dir := filepath.Join(podDir, c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res.fail(128, "StartError", err.Error())
	}
	outFile := filepath.Join(dir, "output")
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
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return res.fail(128, "StartError", err.Error())
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	if c.WorkingDir != "" {
		if st, err := os.Stat(c.WorkingDir); err == nil && st.IsDir() {
			cmd.Dir = c.WorkingDir
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = flatten(env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	res.finished = metav1.Now()
	msg := readMessage(outFile)
	var exit *exec.ExitError
	switch {
	case err == nil:
		res.exitCode, res.reason, res.message = 0, "Completed", msg
	case errors.As(err, &exit):
		code := int32(exit.ExitCode())
		if code < 0 { // killed by a signal
			code = 137
		}
		res.exitCode, res.reason, res.message = code, "Error", msg
	default:
		return res.fail(128, "StartError", fmt.Sprintf("start %s: %v", argv[0], err))
	}
	return res
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
