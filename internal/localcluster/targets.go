package localcluster

import (
	"context"
	_ "embed"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// NodeLabelRuntime marks each fake node with the runtime that backs it.
const NodeLabelRuntime = "sim.rotor.dev/runtime"

func (e *Env) startTargetsRuntime(ctx context.Context) error {
	var g errgroup.Group
	for i := range e.Targets {
		g.Go(func() error { return e.startTarget(ctx, &e.Targets[i]) })
	}
	return g.Wait()
}

func (e *Env) startTarget(ctx context.Context, c *ClusterInfo) error {
	if err := e.startScheduler(c, c.Kubeconfig); err != nil {
		return err
	}
	cs, err := clientFor(c.Kubeconfig)
	if err != nil {
		return err
	}
	var nodes []string
	for n := 0; n < e.opts.NodesPerTarget; n++ {
		nodes = append(nodes, fmt.Sprintf("%s-node-%d", c.Name, n))
	}
	switch c.Runtime {
	case RuntimeKwok:
		err = e.startKwok(ctx, c, cs, nodes)
	default:
		err = e.startNodeAgents(c, nodes)
	}
	if err != nil {
		return err
	}
	return waitNodesReady(ctx, cs, c.Name, nodes, 60*time.Second)
}

// startScheduler starts a kube-scheduler for cluster c acting with the
// kubeconfig kc.
func (e *Env) startScheduler(c *ClusterInfo, kc string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	sched, err := startProcess("kube-scheduler-"+c.Name, filepath.Join(e.opts.BinDir, "kube-scheduler"), []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		// The default 50 QPS would make the scheduler the sandbox's
		// bottleneck at about 60 pods/s (kwok's own client is unlimited):
		// lift it, as kwokctl does, so the target's limit is its CPU.
		"--kube-api-qps=5000", "--kube-api-burst=10000",
	}, nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(sched)
	return nil
}

func clientFor(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := restConfigFromFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

func (e *Env) startKwok(ctx context.Context, c *ClusterInfo, cs kubernetes.Interface, nodes []string) error {
	// One file per target: the targets start at once, and a kwok that
	// read the shared file while another target's write had truncated it
	// exited with "no stages found" (a flaky harness start).
	stages := filepath.Join(e.Dir, "pki", "kwok-stages-"+c.Name+".yaml")
	if err := writeFile(stages, kwokStages); err != nil {
		return err
	}
	for _, name := range nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok",
				NodeLabelRuntime: string(RuntimeKwok),
			},
		}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: create node %s: %w", c.Name, name, err)
		}
	}
	p, err := startProcess("kwok-"+c.Name, filepath.Join(e.opts.BinDir, "kwok"), []string{
		"--kubeconfig=" + c.Kubeconfig, "--config=" + stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		// kwok hands out pod IPs from this range and never from a freed
		// pool quickly enough for bursts of short pods: make it large.
		"--cidr=10.128.0.0/9", "--node-ip=127.0.0.1",
	}, nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(p)
	return nil
}

func (e *Env) startNodeAgents(c *ClusterInfo, nodes []string) error {
	for _, name := range nodes {
		p, err := startProcess("nodeagent-"+name, filepath.Join(e.opts.BinDir, "rotor-nodeagent"), []string{
			"--kubeconfig=" + c.Kubeconfig, "--node-name=" + name,
			"--work-dir=" + filepath.Join(e.Dir, "data", "nodes", name),
		}, nil, filepath.Join(e.Dir, "logs"))
		if err != nil {
			return err
		}
		e.track(p)
	}
	return nil
}

func waitNodesReady(ctx context.Context, cs kubernetes.Interface, cluster string, nodes []string, timeout time.Duration) error {
	var notReady string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, name := range nodes {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || !nodeReady(n) {
				notReady = name
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%s: node %s not Ready after %s (see the kwok or nodeagent log): %w", cluster, notReady, timeout, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
