package imageruntime

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestImageRuntime runs podprog pods through the image runtime against a
// real API server. The steps share one cluster and agent and build on
// each other; each logs its duration.
func TestImageRuntime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the image runtime needs root (mount namespaces, chroot): run this test as root, as this sandbox always does")
	}
	dir := keptDir(t)
	step := stepper(t)
	var prog []byte
	step("build the test program", func(t *testing.T) { prog = buildProgram(t, dir) })
	ref := startRegistry(t) + "/rotor/podprog:e2e"
	step("push the image", func(t *testing.T) { pushImage(t, ref, prog) })
	env, cs := startCluster(t, dir)
	setupNamespace(t, cs, env.CAPEM)
	a := startAgent(t, cs, env, dir, "agent.log")
	dumpOnFailure(t, a.Log)
	work := filepath.Join(dir, "node")
	cidr := netip.MustParsePrefix(podCIDR)
	create := func(t *testing.T, p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods(namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}

	var web1, web2 *corev1.Pod
	step("a pod becomes Ready through its readiness probe", func(t *testing.T) {
		create(t, webPod("web-1", ref))
		web1 = waitPod(t, cs, "web-1", 90*time.Second, "Ready", ready)
		st := web1.Status.ContainerStatuses[0]
		if !st.Ready || st.Started == nil || !*st.Started || !strings.Contains(st.ImageID, "@sha256:") {
			t.Fatalf("container status of a Ready pod: %+v", st)
		}
	})
	step("the program found its token and read its own pod in-cluster", func(t *testing.T) {
		waitLog(t, containerLog(work, web1, "app"), 10*time.Second,
			"uid=65532 gid=65532 hostname=web-1", "token found", "rootfs read-only: true", "scratch writable: true",
			fmt.Sprintf("self: got pod %s/web-1 uid %s", namespace, web1.UID))
	})
	step("the pod IP is from the CIDR", func(t *testing.T) {
		ip, err := netip.ParseAddr(web1.Status.PodIP)
		if err != nil || !cidr.Contains(ip) || web1.Status.HostIP != "127.0.0.1" {
			t.Fatalf("podIP %q hostIP %q, want a pod IP in %s and host IP 127.0.0.1", web1.Status.PodIP, web1.Status.HostIP, cidr)
		}
	})
	step("a second pod on the same port becomes Ready", func(t *testing.T) {
		create(t, webPod("web-2", ref))
		web2 = waitPod(t, cs, "web-2", 60*time.Second, "Ready", ready)
		if web2.Status.PodIP == web1.Status.PodIP {
			t.Fatalf("both pods got IP %s", web1.Status.PodIP)
		}
		for _, ip := range []string{web1.Status.PodIP, web2.Status.PodIP} {
			assertHealthy(t, ip)
		}
	})
	step("a missing image shows ErrImagePull then ImagePullBackOff", func(t *testing.T) {
		missing := webPod("missing", strings.Replace(ref, "podprog:e2e", "nope:e2e", 1))
		create(t, missing)
		p := waitPod(t, cs, "missing", 30*time.Second, "waiting with ErrImagePull and a message", waiting("ErrImagePull"))
		if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "nope") {
			t.Fatalf("ErrImagePull message %q does not name the image", msg)
		}
		p = waitPod(t, cs, "missing", 30*time.Second, "waiting with ImagePullBackOff", waiting("ImagePullBackOff"))
		if p.Status.Phase != corev1.PodPending {
			t.Fatalf("phase %s while the image cannot be pulled, want Pending", p.Status.Phase)
		}
		deletePod(t, cs, "missing", 0)
	})
	step("runAsNonRoot with uid 0 is a CreateContainerConfigError", func(t *testing.T) {
		p := webPod("root", ref)
		p.Spec.Containers[0].SecurityContext.RunAsUser = ptr(int64(0))
		create(t, p)
		waitPod(t, cs, "root", 30*time.Second, "waiting with CreateContainerConfigError", waiting("CreateContainerConfigError"))
		deletePod(t, cs, "root", 0)
	})
	step("a graceful delete gives SIGTERM and waits for the clean exit", func(t *testing.T) {
		start := time.Now()
		deletePod(t, cs, "web-1", 10)
		took := time.Since(start)
		waitLog(t, containerLog(work, web1, "app"), time.Second, "got SIGTERM", "clean exit")
		if took < drainMS*time.Millisecond {
			t.Fatalf("pod gone %s after the delete, before the program's %dms drain could end", took, drainMS)
		}
		t.Logf("pod gone %s after a delete with 10s grace (drain %dms)", took.Round(time.Millisecond), drainMS)
	})
	step("a container that exits under restartPolicy Always is restarted", func(t *testing.T) {
		p := webPod("crasher", ref)
		p.Spec.Containers[0].Args = []string{"crash"}
		p.Spec.Containers[0].StartupProbe, p.Spec.Containers[0].ReadinessProbe, p.Spec.Containers[0].LivenessProbe = nil, nil, nil
		create(t, p)
		p = waitPod(t, cs, "crasher", 30*time.Second, "restartCount >= 2 with last exit code 3", func(p *corev1.Pod) bool {
			st := p.Status.ContainerStatuses
			return len(st) == 1 && st[0].RestartCount >= 2 && st[0].LastTerminationState.Terminated != nil && st[0].LastTerminationState.Terminated.ExitCode == 3
		})
		t.Logf("crasher: %s", describe(p))
		deletePod(t, cs, "crasher", 0)
	})
	step("a container that outlives its grace period is killed", func(t *testing.T) {
		p := webPod("stubborn", ref)
		setEnv(p, "DRAIN_MS", "60000")
		create(t, p)
		p = waitPod(t, cs, "stubborn", 30*time.Second, "Ready", ready)
		start := time.Now()
		deletePod(t, cs, "stubborn", 2)
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("pod ignoring SIGTERM gone only %s after a delete with 2s grace", took)
		}
		log := waitLog(t, containerLog(work, p, "app"), time.Second, "got SIGTERM")
		if strings.Contains(log, "clean exit") {
			t.Fatal("the program finished its 60s drain: it was not killed at the end of its grace period")
		}
	})
	step("a failing liveness probe restarts the container", func(t *testing.T) {
		p := webPod("unhealthy", ref)
		setEnv(p, "HEALTHZ_FAIL_AFTER_MS", "1000")
		setEnv(p, "DRAIN_MS", "0")
		p.Spec.Containers[0].LivenessProbe.FailureThreshold = 1
		p.Spec.Containers[0].LivenessProbe.PeriodSeconds = 1
		create(t, p)
		p = waitPod(t, cs, "unhealthy", 30*time.Second, "a restart after the liveness probe failed", func(p *corev1.Pod) bool {
			st := p.Status.ContainerStatuses
			return len(st) == 1 && st[0].RestartCount >= 1
		})
		waitLog(t, containerLog(work, p, "app"), time.Second, "got SIGTERM")
		deletePod(t, cs, "unhealthy", 0)
	})
	step("stopping the agent stops containers gracefully", func(t *testing.T) {
		a.Stop(t)
		waitLog(t, containerLog(work, web2, "app"), time.Second, "got SIGTERM", "clean exit")
	})
	step("a new agent starts the Always pod again", func(t *testing.T) {
		a2 := startAgent(t, cs, env, dir, "agent2.log")
		dumpOnFailure(t, a2.Log)
		p := waitPod(t, cs, "web-2", 60*time.Second, "Ready again with restartCount 1", func(p *corev1.Pod) bool {
			return ready(p) && p.Status.ContainerStatuses[0].RestartCount == 1
		})
		if p.Status.PodIP != web2.Status.PodIP {
			t.Errorf("pod IP changed from %s to %s across the agent restart", web2.Status.PodIP, p.Status.PodIP)
		}
		assertHealthy(t, p.Status.PodIP)
		a2.Stop(t)
	})
}

// deletePod deletes with grace seconds and waits until the pod is gone.
func deletePod(t *testing.T, cs kubernetes.Interface, name string, grace int64) {
	t.Helper()
	err := cs.CoreV1().Pods(namespace).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete pod %s: %v", name, err)
	}
	deadline := time.Now().Add(time.Duration(grace)*time.Second + 20*time.Second)
	for {
		_, err := cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s still there %s after its deletion with %ds grace", name, time.Until(deadline)+time.Duration(grace)*time.Second+20*time.Second, grace)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assertHealthy(t *testing.T, ip string) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + ip + ":8080/healthz")
	if err != nil {
		t.Fatalf("GET /healthz on pod IP %s: %v", ip, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz on pod IP %s: %s", ip, resp.Status)
	}
}

// stepper runs named steps in order, stopping at the first failure, and
// logs how long each took.
func stepper(t *testing.T) func(string, func(*testing.T)) {
	return func(name string, fn func(*testing.T)) {
		t.Helper()
		start := time.Now()
		ok := t.Run(name, fn)
		t.Logf("step %q took %s", name, time.Since(start).Round(time.Millisecond))
		if !ok {
			t.FailNow()
		}
	}
}

// keptDir is the test's directory, removed on success and kept (with
// every log) on failure or with ROTOR_KEEP_TEST_DIR set.
func keptDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rotor-imageruntime-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("ROTOR_KEEP_TEST_DIR") != "" {
			t.Logf("kept %s for its logs", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

func setEnv(p *corev1.Pod, name, value string) {
	c := &p.Spec.Containers[0]
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i].Value = value
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}
