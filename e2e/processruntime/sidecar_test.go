package processruntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/internal/nodeagent"
)

const (
	nodeName  = "proc-node"
	namespace = "team"
	// mountPath is where the pods' shared volume is mounted: the data
	// agent's /rotor, under a name of this test's own so that nothing
	// else on the machine is touched.
	mountPath = "/rotor-e2e-processruntime"
)

// TestSidecarsAndVolumes: an init container's file reaches the main
// container through an emptyDir; a native sidecar started before the main
// container runs beside it and, stopped with SIGTERM once it has exited,
// reads what the main container wrote and reports it in its termination
// message; the volume is the pod's own (not the node's path); a sidecar
// that ignores SIGTERM is killed after the grace period without failing
// the pod; a failed init container stops the pod before the sidecars
// after it and the main container start.
func TestSidecarsAndVolumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("volumes in the process runtime need mount namespaces: run this test as root, as this sandbox always does")
	}
	dir := t.TempDir()
	_, cs := startCluster(t, dir)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "node")
	startAgent(t, cs, work, filepath.Join(dir, "agent.log"))

	t.Run("init, sidecar and main share the volume in order", func(t *testing.T) {
		p := pod("relay", 30,
			[]corev1.Container{
				shell("fetch", `mkdir -p $D/inputs && echo hello > $D/inputs/greeting`),
				withStartupProbe(sidecar("agent", `trap 'cat $D/outputs/result > $ROTOR_OUTPUT_FILE; exit 0' TERM
test -e $D/inputs/greeting || { echo "sidecar started before the init container ended" > $ROTOR_OUTPUT_FILE; exit 3; }
sleep 0.3 # slower than the main container: only the probe holds it back
touch $D/sidecar-up
while true; do sleep 0.05; done`), "test", "-e", mountPath+"/sidecar-up"),
			},
			shell("main", `test -e $D/sidecar-up || { echo "main started before the sidecar" > $ROTOR_OUTPUT_FILE; exit 4; }
mkdir -p $D/outputs && tr a-z A-Z < $D/inputs/greeting > $D/outputs/result`))
		got := run(t, cs, p, corev1.PodSucceeded)
		main := terminated(t, got.Status.ContainerStatuses, "main")
		if main.ExitCode != 0 {
			t.Fatalf("main exited %d: %s", main.ExitCode, main.Message)
		}
		agent := terminated(t, got.Status.InitContainerStatuses, "agent")
		if agent.ExitCode != 0 || strings.TrimSpace(agent.Message) != "HELLO" {
			t.Fatalf("sidecar ended with %d %q, want 0 and the main container's HELLO", agent.ExitCode, agent.Message)
		}
		if !agent.FinishedAt.After(main.FinishedAt.Time) && !agent.FinishedAt.Equal(&main.FinishedAt) {
			t.Fatalf("sidecar finished at %s, before the main container at %s", agent.FinishedAt, main.FinishedAt)
		}
		// The volume is under the pod's directory; the node's own path
		// stays empty (the mount was the containers' alone).
		vol := filepath.Join(work, namespace, p.Name+"-"+string(got.UID)[:8], "volumes", "data", "outputs", "result")
		if b, err := os.ReadFile(vol); err != nil || strings.TrimSpace(string(b)) != "HELLO" {
			t.Fatalf("the pod's volume %s holds %q (%v), want HELLO", vol, b, err)
		}
		if entries, _ := os.ReadDir(mountPath); len(entries) != 0 {
			t.Fatalf("the node's %s holds %d entries: the volume leaked out of the containers' mount namespaces", mountPath, len(entries))
		}
	})

	t.Run("a sidecar that ignores SIGTERM is killed after the grace period", func(t *testing.T) {
		p := pod("stubborn", 1,
			[]corev1.Container{withStartupProbe(sidecar("deaf", `trap '' TERM; touch $D/deaf; while true; do sleep 0.05; done`), "test", "-e", mountPath+"/deaf")},
			shell("main", `true`))
		start := time.Now()
		got := run(t, cs, p, corev1.PodSucceeded)
		deaf := terminated(t, got.Status.InitContainerStatuses, "deaf")
		if deaf.ExitCode != 137 {
			t.Fatalf("sidecar ignoring SIGTERM exited %d, want 137 (SIGKILL)", deaf.ExitCode)
		}
		if took := time.Since(start); took < time.Second {
			t.Fatalf("the pod ended %s after it was created: the sidecar was not given its 1 s grace", took)
		}
	})

	t.Run("a sidecar whose startup probe never passes fails the pod", func(t *testing.T) {
		p := pod("never-ready", 1,
			[]corev1.Container{withStartupProbe(sidecar("agent", `while true; do sleep 0.05; done`), "false")},
			shell("main", `touch $D/main-ran`))
		got := run(t, cs, p, corev1.PodFailed)
		if got.Status.Reason != "SidecarNotStarted" || !strings.Contains(got.Status.Message, "startupProbe failed 5 times") {
			t.Fatalf("pod ended with %q %q, want SidecarNotStarted naming the probe", got.Status.Reason, got.Status.Message)
		}
		vol := filepath.Join(work, namespace, p.Name+"-"+string(got.UID)[:8], "volumes", "data", "main-ran")
		if _, err := os.Stat(vol); err == nil {
			t.Fatal("the main container ran though the sidecar never started")
		}
	})

	t.Run("a failed init container stops the pod", func(t *testing.T) {
		p := pod("broken", 30,
			[]corev1.Container{shell("fetch", `echo no input > $ROTOR_OUTPUT_FILE; exit 2`), sidecar("agent", `touch $D/sidecar-ran; sleep 30`)},
			shell("main", `touch $D/main-ran`))
		got := run(t, cs, p, corev1.PodFailed)
		fetch := terminated(t, got.Status.InitContainerStatuses, "fetch")
		if fetch.ExitCode != 2 || strings.TrimSpace(fetch.Message) != "no input" {
			t.Fatalf("init container ended %d %q, want 2 and its message", fetch.ExitCode, fetch.Message)
		}
		main := terminated(t, got.Status.ContainerStatuses, "main")
		if main.Reason != "ContainerNotRun" {
			t.Fatalf("main container: %+v, want ContainerNotRun", main)
		}
		vol := filepath.Join(work, namespace, p.Name+"-"+string(got.UID)[:8], "volumes", "data")
		for _, f := range []string{"sidecar-ran", "main-ran"} {
			if _, err := os.Stat(filepath.Join(vol, f)); err == nil {
				t.Fatalf("%s exists: a container after the failed init container ran", f)
			}
		}
	})
}

func shell(name, script string) corev1.Container {
	return corev1.Container{Name: name, Image: "none", Command: []string{"sh", "-ec", script},
		Env:          []corev1.EnvVar{{Name: "D", Value: mountPath}},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: mountPath}}}
}

func sidecar(name, script string) corev1.Container {
	c := shell(name, script)
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

// withStartupProbe makes the sidecar count as started once cmd passes.
func withStartupProbe(c corev1.Container, cmd ...string) corev1.Container {
	c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}, PeriodSeconds: 1, FailureThreshold: 5}
	return c
}

func pod(name string, grace int64, inits []corev1.Container, main corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			NodeName: nodeName, RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: &grace,
			Volumes:        []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			InitContainers: inits, Containers: []corev1.Container{main},
		},
	}
}

// run creates p and waits (60 s at most) for it to reach phase.
func run(t *testing.T, cs kubernetes.Interface, p *corev1.Pod, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := cs.CoreV1().Pods(namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err == nil && (got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed) {
			if got.Status.Phase != phase {
				t.Fatalf("pod %s ended %s, want %s: %s", p.Name, got.Status.Phase, phase, describe(got))
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s did not end within 60s (phase %v, err %v)", p.Name, got.Status.Phase, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func terminated(t *testing.T, sts []corev1.ContainerStatus, name string) *corev1.ContainerStateTerminated {
	t.Helper()
	for _, s := range sts {
		if s.Name == name {
			if s.State.Terminated == nil {
				t.Fatalf("container %s is not terminated: %+v", name, s.State)
			}
			return s.State.Terminated
		}
	}
	t.Fatalf("no status for container %s in %+v", name, sts)
	return nil
}

func describe(p *corev1.Pod) string {
	var b strings.Builder
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if s.State.Terminated != nil {
			fmt.Fprintf(&b, "%s: exit %d %s %q; ", s.Name, s.State.Terminated.ExitCode, s.State.Terminated.Reason, s.State.Terminated.Message)
		}
	}
	return b.String()
}

func startCluster(t *testing.T, dir string) (*localcluster.Env, kubernetes.Interface) {
	return harness.StartAPIServer(t, dir)
}

// startAgent runs a process-runtime agent in this process until the test
// ends, and waits for its Node to be Ready; its log is printed if the
// test failed.
func startAgent(t *testing.T, cs kubernetes.Interface, work, logPath string) {
	t.Helper()
	harness.StartNodeAgent(t, cs, nodeagent.Config{NodeName: nodeName, WorkDir: work, HeartbeatInterval: 2 * time.Second}, logPath)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log:\n%s", b)
		}
	})
}
