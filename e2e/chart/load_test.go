package chart

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// chain is a workflow of two tasks that sleep SECONDS each.
const chain = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    nap:
      outputs: {done: boolean}
      container:
        image: busybox
        command: [sh, -c, 'sleep SECONDS; echo "{\"done\": true}" > "$ROTOR_OUTPUT_FILE"']
  nodes:
    - {name: a, task: nap}
    - {name: b, task: nap, dependsOn: [a]}
`

func chainOf(seconds string) string { return strings.ReplaceAll(chain, "SECONDS", seconds) }

// podLedger watches task pods in every target and keeps, per pod name,
// each distinct pod (UID) that had it: a task attempt must have one pod.
type podLedger struct {
	mu   sync.Mutex
	uids map[string]map[types.UID]bool
	stop chan struct{}
}

func watchTaskPods(t *testing.T) *podLedger {
	t.Helper()
	l := &podLedger{uids: map[string]map[types.UID]bool{}, stop: make(chan struct{})}
	for i, c := range env.Env.Targets {
		f := informers.NewSharedInformerFactoryWithOptions(env.Targets[i], 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = pod.LabelManaged + "=true"
		}))
		inf := f.Core().V1().Pods().Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
			p := o.(*corev1.Pod)
			l.mu.Lock()
			key := c.Name + "/" + p.Namespace + "/" + p.Name
			if l.uids[key] == nil {
				l.uids[key] = map[types.UID]bool{}
			}
			l.uids[key][p.UID] = true
			l.mu.Unlock()
		}})
		f.Start(l.stop)
		if !cache.WaitForCacheSync(l.stop, inf.HasSynced) {
			t.Fatalf("pod watch on %s did not sync", c.Name)
		}
	}
	t.Cleanup(func() { close(l.stop) })
	return l
}

// doubles returns the pod names seen with more than one pod, and how many
// names were seen in all.
func (l *podLedger) doubles(prefix string) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	seen := 0
	for key, uids := range l.uids {
		if !strings.Contains(key, "/"+prefix) {
			continue
		}
		seen++
		if len(uids) > 1 {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out, seen
}

// waitAllEnded waits until every workflow of the namespaces has ended
// and returns them.
func waitAllEnded(t *testing.T, namespaces []string, want int, timeout time.Duration) []v1alpha1.Workflow {
	t.Helper()
	var all []v1alpha1.Workflow
	ended := 0
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		all, ended = nil, 0
		for _, ns := range namespaces {
			list, err := env.Rotor.RotorV1alpha1().Workflows(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, wf := range list.Items {
				all = append(all, wf)
				if wf.Status.Phase.IsTerminal() {
					ended++
				}
			}
		}
		return ended == want && len(all) == want, nil
	})
	if err != nil {
		env.Report(t)
		t.Fatalf("%d of %d workflows ended after %s (%d found)", ended, want, timeout, len(all))
	}
	return all
}

// checkOneAttemptEach fails the test unless every workflow succeeded and
// every node ran exactly one attempt: nothing lost, no retry of any kind
// spent on a move of the engine.
func checkOneAttemptEach(t *testing.T, wfs []v1alpha1.Workflow) (nodes int) {
	t.Helper()
	var bad []string
	for _, wf := range wfs {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			bad = append(bad, fmt.Sprintf("%s/%s %s: %s", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message))
		}
		for name, n := range wf.Status.Nodes {
			nodes++
			if len(n.Attempts) != 1 {
				bad = append(bad, fmt.Sprintf("%s/%s node %s: %d attempts", wf.Namespace, wf.Name, name, len(n.Attempts)))
			}
		}
	}
	if len(bad) > 0 {
		if len(bad) > 20 {
			bad = append(bad[:20], fmt.Sprintf("... %d more", len(bad)-20))
		}
		t.Fatalf("%d of %d workflows or nodes not as wanted:\n  %s", len(bad), len(wfs), strings.Join(bad, "\n  "))
	}
	return nodes
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}
