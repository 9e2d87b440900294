package localcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Identities of the sandbox's own machinery on a control cluster that
// runs pods. Each has its own token, so the audit log tells the
// kubelet stand-in, the scheduler and the controller manager apart from
// Rotor's ServiceAccounts and from an administrator.
const (
	UserNodeAgent         = "rotor-nodeagent"
	UserScheduler         = "kube-scheduler"
	UserControllerManager = "kube-controller-manager"
	// UserInstaller is who runs helm in the sandbox: a platform
	// administrator installing Rotor, not Rotor itself.
	UserInstaller = "rotor-installer"
)

// kcmControllers are the controllers a control cluster running Rotor's
// chart needs: workloads (Deployment → ReplicaSet → Pod, StatefulSet),
// ServiceAccounts and their tokens, kube-root-ca.crt (read by every pod's
// projected token volume), garbage collection (owner references, helm
// uninstall), namespace deletion, PodDisruptionBudget status, and
// EndpointSlices for the chart's Services.
var kcmControllers = []string{
	"deployment-controller", "replicaset-controller", "statefulset-controller",
	"serviceaccount-controller", "serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller", "garbage-collector-controller",
	"namespace-controller", "disruption-controller", "endpointslice-controller",
}

// runsPods says whether the control cluster runs pods (Options.ControlNodes).
func (e *Env) runsPods() bool { return e.opts.ControlNodes > 0 }

// startControlWorkloads starts what makes the control cluster run pods:
// the image registry, kube-controller-manager, a kube-scheduler and the
// node agents that pull images and run them.
func (e *Env) startControlWorkloads(ctx context.Context) error {
	if err := e.startRegistry(ctx); err != nil {
		return err
	}
	if err := e.startControllerManager(ctx); err != nil {
		return err
	}
	kc, err := e.KubeconfigFor(e.Control, UserScheduler)
	if err != nil {
		return err
	}
	if err := e.startScheduler(&e.Control, kc); err != nil {
		return err
	}
	var nodes []string
	for n := 0; n < e.opts.ControlNodes; n++ {
		nodes = append(nodes, fmt.Sprintf("control-node-%d", n))
	}
	if err := e.startImageNodeAgents(nodes); err != nil {
		return err
	}
	cs, err := clientFor(e.Control.Kubeconfig)
	if err != nil {
		return err
	}
	return waitNodesReady(ctx, cs, e.Control.Name, nodes, 60*time.Second)
}

func (e *Env) startRegistry(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProcess("rotor-registry", filepath.Join(e.opts.BinDir, "rotor-registry"), []string{
		"--listen=" + addr, "--dir=" + filepath.Join(e.Dir, "data", "registry"),
	}, nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(p)
	e.Registry = addr
	return waitHTTP(ctx, p, "http://"+addr+"/v2/", nil, "", 30*time.Second)
}

func (e *Env) startControllerManager(ctx context.Context) error {
	kc, err := e.KubeconfigFor(e.Control, UserControllerManager)
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := startProcess("kube-controller-manager", filepath.Join(e.opts.BinDir, "kube-controller-manager"), []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port), "--leader-elect=false",
		"--controllers=" + strings.Join(kcmControllers, ","),
		// Each controller acts as its own ServiceAccount, as in a real
		// control plane, so their writes are told apart in the audit log.
		"--use-service-account-credentials",
		"--service-account-private-key-file=" + e.pki.SAKeyFile, "--root-ca-file=" + e.pki.CAFile,
		"--kube-api-qps=200", "--kube-api-burst=400",
		// A replica pod that goes away is replaced at once, not after
		// the default minute a rolling StatefulSet would otherwise wait.
		"--concurrent-statefulset-syncs=5",
	}, nil, filepath.Join(e.Dir, "logs"))
	if err != nil {
		return err
	}
	e.track(p)
	// Its controllers work once the CA bundle every pod's token volume
	// reads is published: wait for that rather than for /healthz.
	cs, err := clientFor(e.Control.Kubeconfig)
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if exited, _ := p.Exited(); exited {
			return false, fmt.Errorf("kube-controller-manager exited; log %s ends:\n%s", p.Log, tail(p.Log, 2000))
		}
		_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kube-controller-manager did not publish kube-root-ca.crt in 60 s (log %s): %w", p.Log, err)
	}
	return nil
}

// startImageNodeAgents starts node agents in their image runtime: they
// pull each pod's images from the sandbox registry and run the image's
// own entrypoint in a mount namespace with the pod's volumes (its
// ServiceAccount token among them). Node n gives its pods loopback IPs
// from 127.(10+n).0.0/16.
func (e *Env) startImageNodeAgents(nodes []string) error {
	kc, err := e.KubeconfigFor(e.Control, UserNodeAgent)
	if err != nil {
		return err
	}
	for n, name := range nodes {
		p, err := startProcess("nodeagent-"+name, filepath.Join(e.opts.BinDir, "rotor-nodeagent"), []string{
			"--kubeconfig=" + kc, "--node-name=" + name,
			"--work-dir=" + filepath.Join(e.Dir, "data", "nodes", name),
			"--pull-images", "--image-dir=" + filepath.Join(e.Dir, "data", "images"),
			fmt.Sprintf("--pod-cidr=127.%d.0.0/16", 10+n),
			// Under the 5 s Stop gives a process before SIGKILL, so the
			// agent ends its pods gracefully before it is killed.
			"--shutdown-grace=4s",
		}, nil, filepath.Join(e.Dir, "logs"))
		if err != nil {
			return err
		}
		e.track(p)
	}
	return nil
}
