package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// allocatable is the node's advertised capacity (nothing is enforced),
// also what the image runtime's resourceFieldRef reports for unset limits.
var allocatable = corev1.ResourceList{
	corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
	corev1.ResourcePods: resource.MustParse("1000"),
}

// Config configures an Agent.
type Config struct {
	NodeName string
	// WorkDir holds one folder per pod with each container's output file
	// and log.
	WorkDir string
	// Labels are added to the Node.
	Labels            map[string]string
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
	// Image, when set, makes the agent the image runtime instead of the
	// process runtime.
	Image *ImageConfig
}

// Agent runs the pods bound to one Node: as local processes, or from
// their images when Config.Image is set.
type Agent struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger
	img    *imageRuntime // nil in the process runtime

	mu      sync.Mutex
	running map[types.UID]*podRun
}

// New returns an agent; Run starts it.
func New(client kubernetes.Interface, cfg Config) *Agent {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{cfg: cfg, client: client, log: cfg.Logger.With("node", cfg.NodeName), running: map[types.UID]*podRun{}}
}

// Run registers the node, then runs pods until ctx ends; then it kills
// every process it started (the image runtime stops them gracefully).
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.WorkDir, 0o755); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	if a.cfg.Image != nil {
		rt, err := newImageRuntime(a, *a.cfg.Image)
		if err != nil {
			return err
		}
		a.img = rt
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.sync(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.sync(ctx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if a.img != nil {
				a.img.deleted(obj)
			}
		},
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("pod informer for node %s did not sync", a.cfg.NodeName)
	}
	a.log.Info("node agent running", "workDir", a.cfg.WorkDir, "runtime", a.runtimeName())
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.killAll()
			factory.Shutdown()
			return nil
		case <-t.C:
			if err := a.heartbeat(context.WithoutCancel(ctx)); err != nil {
				a.log.Warn("node heartbeat failed", "err", err)
			}
		}
	}
}

func (a *Agent) register(ctx context.Context) error {
	labels := map[string]string{
		"kubernetes.io/hostname": a.cfg.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH,
		"sim.rotor.dev/runtime": a.runtimeName(),
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels}}
	_, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", a.cfg.NodeName, err)
	}
	if err := a.heartbeat(ctx); err != nil {
		return fmt.Errorf("set node %s ready: %w", a.cfg.NodeName, err)
	}
	if a.img != nil {
		return nil // the image runtime restarts or fails orphans as the informer lists them
	}
	return a.failOrphans(ctx)
}

// runtimeName is the node's sim.rotor.dev/runtime label.
func (a *Agent) runtimeName() string {
	if a.img != nil {
		return "image"
	}
	return "process"
}

func (a *Agent) heartbeat(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Capacity, n.Status.Allocatable = allocatable.DeepCopy(), allocatable.DeepCopy()
		n.Status.Phase = corev1.NodeRunning
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: a.cfg.NodeName}}
		n.Status.NodeInfo = corev1.NodeSystemInfo{
			OperatingSystem: "linux", Architecture: runtime.GOARCH, KubeletVersion: "rotor-nodeagent",
			ContainerRuntimeVersion: a.runtimeName() + "://local",
		}
		n.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "NodeAgentReady",
			Message: "rotor node agent (" + a.runtimeName() + " runtime) is running", LastHeartbeatTime: now, LastTransitionTime: now,
		}}
		_, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// failOrphans ends pods that a previous agent on this node was running:
// their processes died with it, and a kubelet that lost a container reports
// it failed rather than silently re-running it.
func (a *Agent) failOrphans(ctx context.Context) error {
	pods, err := a.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String(),
	})
	if err != nil {
		return fmt.Errorf("list pods of node %s: %w", a.cfg.NodeName, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodRunning {
			a.finish(ctx, p, nil, "NodeAgentRestarted", "the node agent restarted and the process was lost")
		}
	}
	return nil
}

func podDir(root string, p *corev1.Pod) string {
	return filepath.Join(root, p.Namespace, p.Name+"-"+string(p.UID)[:8])
}
