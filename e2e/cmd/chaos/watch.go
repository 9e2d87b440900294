package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/e2e/chaos"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// taskPods lists the task pods of every target in the soak's namespaces.
func taskPods(ctx context.Context, env *harness.Env, targets []kubernetes.Interface, prefix string) ([]chaos.TaskPod, error) {
	var out []chaos.TaskPod
	for i, c := range env.Env.Targets {
		list, err := targets[i].CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: pod.LabelManaged + "=true"})
		if err != nil {
			return nil, fmt.Errorf("list task pods of %s: %w", c.Name, err)
		}
		for _, p := range list.Items {
			if !strings.HasPrefix(p.Namespace, prefix) {
				continue
			}
			out = append(out, chaos.TaskPod{Target: c.Name, Namespace: p.Namespace, Name: p.Name,
				WorkflowUID: p.Labels[pod.LabelWorkflowUID],
				Finished:    p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
				Deleting:    p.DeletionTimestamp != nil})
		}
	}
	return out, nil
}

// memory samples the RSS of every Rotor process every 2 s.
type memory struct {
	mu      sync.Mutex
	max     map[string]int64 // bytes, by component name
	samples int
}

func sampleMemory(env *harness.Env, names []string, stop <-chan struct{}) *memory {
	m := &memory{max: map[string]int64{}}
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
			for _, n := range names {
				p, err := env.Process(n)
				if err != nil {
					continue
				}
				rss, err := rssOf(p.PID)
				if err != nil {
					continue // exited between the lookup and the read
				}
				m.mu.Lock()
				m.max[n] = max(m.max[n], rss)
				m.samples++
				m.mu.Unlock()
			}
		}
	}()
	return m
}

// rssOf reads VmRSS from /proc/PID/status.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

func (m *memory) result() (map[string]int64, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int64{}
	for k, v := range m.max {
		out[k] = v
	}
	return out, m.samples
}
