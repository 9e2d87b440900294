package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/rotor-dev/rotor/internal/etcdroles"
	"github.com/rotor-dev/rotor/internal/ociimage"
)

// Release is the Helm release name of Rotor in the sandbox, and
// TargetRelease that of its RBAC in each target cluster.
const (
	Release       = "rotor"
	TargetRelease = "rotor-target"
	// TargetServiceAccount is the ServiceAccount charts/rotor-target
	// makes in each target: Rotor's identity there.
	TargetServiceAccount = "rotor"
)

// ChartOptions configure InstallChart.
type ChartOptions struct {
	// ChartDir holds charts/rotor and charts/rotor-target.
	ChartDir string
	// ImageLayout is the OCI layout `make image` wrote (bin/images); its
	// images are pushed to the sandbox registry under ImageTag.
	ImageLayout string
	ImageTag    string
	// Values are extra chart values, merged over the sandbox's own.
	Values map[string]any
	// Propellers, when not 0, is how many propeller replicas must be
	// Ready before the install counts as done: with autoscaling the
	// StatefulSet starts at 1 and the manager scales it to its minimum.
	Propellers int32
	// Timeout bounds the wait for every Rotor pod to be Ready (default 2m).
	Timeout time.Duration
}

// PushImages copies the images of an OCI layout to the sandbox registry
// under tag.
func (e *Env) PushImages(ctx context.Context, layout, tag string) ([]ociimage.Pushed, error) {
	if e.Registry == "" {
		return nil, fmt.Errorf("this sandbox has no image registry: start it with control nodes (rotor dev up --install chart)")
	}
	pushed, err := ociimage.Push(ctx, layout, e.Registry, tag)
	if err != nil {
		return nil, fmt.Errorf("push images from %s (run 'make image' first): %w", layout, err)
	}
	return pushed, nil
}

// InstallChart installs Rotor the way a platform team would: its RBAC in
// every target with charts/rotor-target (Rotor then acts there with that
// ServiceAccount's token, not as an administrator), then charts/rotor in
// the control cluster with the targets registered from values, and waits
// until every Rotor pod is Ready through its probes.
func (e *Env) InstallChart(ctx context.Context, o ChartOptions) error {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if _, err := e.PushImages(ctx, o.ImageLayout, o.ImageTag); err != nil {
		return err
	}
	var targets []any
	for _, t := range e.Targets {
		kc, err := e.installTargetRBAC(ctx, o.ChartDir, t)
		if err != nil {
			return err
		}
		targets = append(targets, map[string]any{
			"name": t.Name, "kubeconfig": string(kc),
			"labels": map[string]any{"rotor.dev/runtime": string(t.Runtime)},
		})
	}
	if err := e.etcdSecret(ctx); err != nil {
		return err
	}
	values := mergeValues(e.sandboxValues(o.ImageTag, targets), o.Values)
	file := filepath.Join(e.Dir, "helm", "values.yaml")
	if err := writeYAML(file, values); err != nil {
		return err
	}
	kc, err := e.KubeconfigFor(e.Control, UserInstaller)
	if err != nil {
		return err
	}
	if _, err := e.Helm(ctx, kc, "install", Release, filepath.Join(o.ChartDir, "rotor"),
		"--namespace", RotorNamespace, "--create-namespace", "--values", file); err != nil {
		return err
	}
	return e.WaitRotorPods(ctx, o.Timeout, o.Propellers)
}

// UpgradeChart runs helm upgrade of the sandbox's release, keeping the
// values it was installed with and setting values over them.
func (e *Env) UpgradeChart(ctx context.Context, chartDir string, values map[string]any) error {
	file := filepath.Join(e.Dir, "helm", fmt.Sprintf("upgrade-%d.yaml", time.Now().UnixNano()))
	if err := writeYAML(file, values); err != nil {
		return err
	}
	kc, err := e.KubeconfigFor(e.Control, UserInstaller)
	if err != nil {
		return err
	}
	_, err = e.Helm(ctx, kc, "upgrade", Release, filepath.Join(chartDir, "rotor"),
		"--namespace", RotorNamespace, "--reuse-values", "--values", file)
	return err
}

// sandboxValues are the chart values of the sandbox: images from its
// registry, listeners on each pod's own loopback IP (pods share the
// host's network here), its etcd, short leases, the targets.
func (e *Env) sandboxValues(tag string, targets []any) map[string]any {
	image := func(name string) map[string]any {
		return map[string]any{"registry": e.Registry, "repository": name, "tag": tag, "pullPolicy": "IfNotPresent"}
	}
	etcd := map[string]any{"endpoints": []any{e.EtcdEndpoint}}
	switch {
	case len(e.EtcdUsers) > 0:
		etcd["tls"] = map[string]any{"managerSecretName": EtcdUserSecret(etcdroles.Manager), "propellerSecretName": EtcdUserSecret(etcdroles.Propeller)}
	case e.EtcdCertFile != "":
		etcd["tls"] = map[string]any{"secretName": EtcdSecret}
	}
	return map[string]any{
		"bindAddress": "$(POD_IP)",
		"etcd":        etcd,
		"manager": map[string]any{
			"image": image("rotor-manager"), "sessionTTL": "3s",
			"admin": map[string]any{"bindAddress": "$(POD_IP)"},
		},
		"propeller": map[string]any{"image": image("rotor-propeller"), "leaseTTL": "3s",
			"http": map[string]any{"allowedURLPrefixes": []any{SandboxHTTPPrefix}}},
		"targets": targets,
	}
}

// EtcdSecret is the Secret of Rotor's etcd client certificate in the
// sandbox (Options.EtcdTLS without EtcdAuth), in the layout the chart's
// etcd.tls.secretName wants.
const EtcdSecret = "rotor-etcd-tls"

// EtcdUserSecret is the Secret of etcd user u's certificate
// (Options.EtcdAuth), for etcd.tls.managerSecretName and
// propellerSecretName.
func EtcdUserSecret(u string) string { return u + "-etcd-tls" }

// etcdSecret stores the sandbox's etcd CA and client certificates in
// Secrets of the release namespace, when etcd serves TLS: one per
// component with EtcdAuth, one shared without.
func (e *Env) etcdSecret(ctx context.Context) error {
	if e.EtcdCertFile == "" {
		return nil
	}
	secrets := map[string]EtcdCert{EtcdSecret: {CertFile: e.EtcdCertFile, KeyFile: e.EtcdKeyFile}}
	if len(e.EtcdUsers) > 0 {
		// Not the root's: no pod of Rotor holds it.
		secrets = map[string]EtcdCert{}
		for u, c := range e.EtcdUsers {
			secrets[EtcdUserSecret(u)] = c
		}
	}
	if err := e.CreateNamespaces(ctx, RotorNamespace); err != nil {
		return err
	}
	// Part of the install: the installer makes them, as a platform team
	// would from its etcd's PKI.
	kc, err := e.KubeconfigFor(e.Control, UserInstaller)
	if err != nil {
		return err
	}
	cs, err := clientFor(kc)
	if err != nil {
		return err
	}
	for name, c := range secrets {
		data := map[string][]byte{}
		for key, file := range map[string]string{"ca.crt": e.EtcdCAFile, "tls.crt": c.CertFile, "tls.key": c.KeyFile} {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			data[key] = b
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: RotorNamespace}, Data: data}
		if _, err := cs.CoreV1().Secrets(RotorNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Secret %s/%s: %w", RotorNamespace, name, err)
		}
	}
	return nil
}

// installTargetRBAC installs charts/rotor-target in a target and returns
// a kubeconfig for its ServiceAccount (a token from the TokenRequest API,
// valid for a week: the sandbox's lifetime).
func (e *Env) installTargetRBAC(ctx context.Context, chartDir string, t ClusterInfo) ([]byte, error) {
	if _, err := e.Helm(ctx, t.Kubeconfig, "install", TargetRelease, filepath.Join(chartDir, "rotor-target"),
		"--namespace", RotorNamespace, "--create-namespace"); err != nil {
		return nil, err
	}
	cs, err := clientFor(t.Kubeconfig)
	if err != nil {
		return nil, err
	}
	week := int64(7 * 24 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(RotorNamespace).CreateToken(ctx, TargetServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &week}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: token for ServiceAccount %s/%s: %w", t.Name, RotorNamespace, TargetServiceAccount, err)
	}
	return kubeconfig(t.Name, t.Server, e.CAPEM, user{Name: "rotor", Token: tr.Status.Token})
}

// Helm runs bin/helm against the cluster of kubeconfig kc, with its cache
// and config inside the sandbox's folder.
func (e *Env) Helm(ctx context.Context, kc string, args ...string) (string, error) {
	home := filepath.Join(e.Dir, "helm")
	cmd := exec.CommandContext(ctx, filepath.Join(e.opts.BinDir, "helm"), append(args, "--kubeconfig", kc)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// WaitRotorPods waits until the manager Deployment and the propeller
// StatefulSet have every replica Ready and updated (and the StatefulSet,
// if propellers is not 0, wants that many); on a timeout the error lists
// each Rotor pod's state.
func (e *Env) WaitRotorPods(ctx context.Context, timeout time.Duration, propellers int32) error {
	cs, err := clientFor(e.Control.Kubeconfig)
	if err != nil {
		return err
	}
	var why string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		why = ""
		deps, err := cs.AppsV1().Deployments(RotorNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		for _, d := range deps.Items {
			if w := deploymentNotReady(&d); w != "" {
				why += w + "; "
			}
		}
		sts, err := cs.AppsV1().StatefulSets(RotorNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		for _, s := range sts.Items {
			if w := statefulSetNotReady(&s); w != "" {
				why += w + "; "
			}
			if propellers > 0 && s.Spec.Replicas != nil && *s.Spec.Replicas != propellers {
				why += fmt.Sprintf("statefulset %s wants %d replicas, not yet %d; ", s.Name, *s.Spec.Replicas, propellers)
			}
		}
		return why == "" && len(deps.Items)+len(sts.Items) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("pods of the rotor release not Ready after %s: %s\npods:\n%s(node agent logs in %s)", timeout, why, e.describePods(cs), filepath.Join(e.Dir, "logs"))
	}
	return nil
}

func deploymentNotReady(d *appsv1.Deployment) string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if d.Generation > s.ObservedGeneration || s.UpdatedReplicas < want || s.ReadyReplicas < want || s.Replicas > want {
		return fmt.Sprintf("deployment %s: %d/%d ready, %d updated, %d in all", d.Name, s.ReadyReplicas, want, s.UpdatedReplicas, s.Replicas)
	}
	return ""
}

func statefulSetNotReady(st *appsv1.StatefulSet) string {
	want := int32(1)
	if st.Spec.Replicas != nil {
		want = *st.Spec.Replicas
	}
	s := st.Status
	if st.Generation > s.ObservedGeneration || s.ReadyReplicas < want || s.Replicas > want ||
		(s.UpdateRevision != "" && s.CurrentRevision != s.UpdateRevision) {
		return fmt.Sprintf("statefulset %s: %d/%d ready, revision %s → %s", st.Name, s.ReadyReplicas, want, s.CurrentRevision, s.UpdateRevision)
	}
	return ""
}

// describePods is one line per pod of Rotor's namespace: phase, node,
// and each container's state with its reason and message.
func (e *Env) describePods(cs kubernetes.Interface) string {
	pods, err := cs.CoreV1().Pods(RotorNamespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err.Error() + "\n"
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "  %s: %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName)
		for _, c := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, "; %s ready=%v restarts=%d %s", c.Name, c.Ready, c.RestartCount, containerState(c.State))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return "waiting " + s.Waiting.Reason + ": " + s.Waiting.Message
	case s.Terminated != nil:
		return fmt.Sprintf("terminated %s (exit %d): %s", s.Terminated.Reason, s.Terminated.ExitCode, s.Terminated.Message)
	case s.Running != nil:
		return "running"
	}
	return "unknown"
}

// mergeValues merges over into base, recursively for maps; over wins.
func mergeValues(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, bok := out[k].(map[string]any)
		om, ook := v.(map[string]any)
		if bok && ook {
			out[k] = mergeValues(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

func writeYAML(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return writeFile(path, b)
}

// ManagerAdminAddrs lists where the sandbox's managers serve their admin
// API: the processes it started, or, when Rotor runs from its chart, the
// manager pods' addresses (their pod IPs, on the chart's admin port).
func (e *Env) ManagerAdminAddrs(ctx context.Context) ([]string, error) {
	if len(e.ManagerAdmin) > 0 || e.Registry == "" {
		return e.ManagerAdmin, nil
	}
	cs, err := clientFor(e.Control.Kubeconfig)
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(RotorNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=manager"})
	if err != nil {
		return nil, fmt.Errorf("list manager pods: %w", err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(managerAdminPort)))
		}
	}
	return out, nil
}

// ManagerAdminTLS is how to verify the sandbox managers' admin API: the
// CA that signed their certificate and, when that certificate does not
// name the address dialled, the name it does. Processes the sandbox
// started serve a certificate of its CA for 127.0.0.1; the chart serves
// its own, made at install for its Service, whose CA is in its Secret.
func (e *Env) ManagerAdminTLS(ctx context.Context) (caPEM []byte, serverName string, err error) {
	if len(e.ManagerAdmin) > 0 || e.Registry == "" {
		return e.CAPEM, "", nil
	}
	cs, err := clientFor(e.Control.Kubeconfig)
	if err != nil {
		return nil, "", err
	}
	sec, err := cs.CoreV1().Secrets(RotorNamespace).Get(ctx, "rotor-manager-admin-tls", metav1.GetOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("read the chart's admin API certificate: %w", err)
	}
	return sec.Data["ca.crt"], "rotor-manager-admin." + RotorNamespace + ".svc", nil
}

// managerAdminPort is the chart's default manager.admin.port.
const managerAdminPort = 9092
