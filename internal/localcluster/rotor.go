package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/internal/etcdroles"
	"github.com/rotor-dev/rotor/manager/admission"
)

// RotorNamespace is where Rotor keeps the kubeconfig Secrets of targets.
const RotorNamespace = "rotor-system"

// Clients returns admin clients for the control cluster.
func (e *Env) Clients() (kubernetes.Interface, versioned.Interface, error) {
	cfg, err := restConfigFromFile(e.Control.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	rotor, err := versioned.NewForConfig(cfg)
	return kube, rotor, err
}

// TargetClient returns an admin client for target i.
func (e *Env) TargetClient(i int) (kubernetes.Interface, error) {
	cfg, err := restConfigFromFile(e.Targets[i].Kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// CreateNamespaces creates namespaces (tenants) in the control cluster.
func (e *Env) CreateNamespaces(ctx context.Context, names ...string) error {
	kube, _, err := e.Clients()
	if err != nil {
		return err
	}
	for _, n := range names {
		_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", n, err)
		}
	}
	return nil
}

// ExampleSecret is the Secret docs/examples/secret-env.yaml reads, which
// the sandbox creates in its tenant namespaces as a platform team's
// tenant would (kubectl create secret generic example-greeting
// --from-literal=text=...).
const ExampleSecret = "example-greeting"

// CreateExampleSecrets creates ExampleSecret in each namespace of the
// control cluster (kept if it exists).
func (e *Env) CreateExampleSecrets(ctx context.Context, namespaces ...string) error {
	kube, _, err := e.Clients()
	if err != nil {
		return err
	}
	for _, ns := range namespaces {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: ExampleSecret, Namespace: ns},
			Data: map[string][]byte{"text": []byte("hello from a Secret")}}
		if _, err := kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create secret %s/%s: %w", ns, ExampleSecret, err)
		}
	}
	return nil
}

// RegisterTargets stores each target's kubeconfig in a Secret and creates
// its Cluster object, labelled with its name and runtime.
func (e *Env) RegisterTargets(ctx context.Context) error {
	if err := e.CreateNamespaces(ctx, RotorNamespace); err != nil {
		return err
	}
	kube, rotor, err := e.Clients()
	if err != nil {
		return err
	}
	for i, t := range e.Targets {
		// What charts/rotor-target installs for tenant isolation: the
		// role each tenant's launcher is bound to.
		tk, err := e.TargetClient(i)
		if err != nil {
			return err
		}
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: tenancy.LauncherClusterRole}, Rules: tenancy.LauncherRules()}
		if _, err := tk.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRole %s in %s: %w", role.Name, t.Name, err)
		}
		data, err := os.ReadFile(t.Kubeconfig)
		if err != nil {
			return err
		}
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-" + t.Name, Namespace: RotorNamespace},
			Data:       map[string][]byte{"kubeconfig": data},
		}
		if _, err := kube.CoreV1().Secrets(RotorNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Secret for %s: %w", t.Name, err)
		}
		c := &v1alpha1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: t.Name, Labels: map[string]string{"rotor.dev/runtime": string(t.Runtime)}},
			Spec: v1alpha1.ClusterSpec{
				KubeconfigSecretRef: &v1alpha1.SecretKeyRef{Name: sec.Name, Namespace: RotorNamespace, Key: "kubeconfig"},
				Weight:              1, Runtime: string(t.Runtime),
			},
		}
		if _, err := rotor.RotorV1alpha1().Clusters().Create(ctx, c, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Cluster %s: %w", t.Name, err)
		}
	}
	return nil
}

// StartPropeller starts replica i of rotor-propeller with its own identity
// (user rotor-propeller-i, which must be in Options.Users).
func (e *Env) StartPropeller(i int, extraArgs ...string) (*Process, error) {
	name := "rotor-propeller-" + strconv.Itoa(i)
	kc, err := e.KubeconfigFor(e.Control, name)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--kubeconfig=" + kc, "--namespace=" + RotorNamespace,
		"--listen=127.0.0.1:" + strconv.Itoa(port), "--http-allowed-url-prefixes=" + SandboxHTTPPrefix,
		// Profiles for the benchmarks; the listener is loopback.
		"--pprof"}, e.EtcdFlagsAs(etcdroles.Propeller)...)
	args = append(args, e.DataArgs()...)
	args = append(args, extraArgs...)
	return e.StartProcess(name, "rotor-propeller", args, nil)
}

// SandboxHTTPPrefix is what the sandbox's http tasks may call: servers on
// this machine's loopback, where every Rotor process and test server binds.
// A later --http-allowed-url-prefixes in extraArgs replaces it.
const SandboxHTTPPrefix = "http://127.0.0.1:"

// ShardPrefix is the etcd prefix of the sandbox's shard map.
const ShardPrefix = "/rotor"

// ShardingOptions configure sharded Rotor processes.
type ShardingOptions struct {
	Partitions int
	// LeaseTTL of replicas and managers (default 3s: fast tests).
	LeaseTTL time.Duration
	// ManagerArgs are extra rotor-manager flags.
	ManagerArgs []string
	// ReplicaArgs are extra flags of sharded rotor-propellers.
	ReplicaArgs []string
}

func (o *ShardingOptions) defaults() {
	if o.Partitions == 0 {
		o.Partitions = 64
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 3 * time.Second
	}
}

// StartManager starts instance i of rotor-manager.
func (e *Env) StartManager(i int, o ShardingOptions) (*Process, error) {
	o.defaults()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	webhook, err := freePort()
	if err != nil {
		return nil, err
	}
	cert, key, err := e.webhookCert()
	if err != nil {
		return nil, err
	}
	// The admin API serves a certificate of the sandbox CA; its client CA
	// is the control apiserver's own (the sandbox CA too), which the
	// manager reads from kube-system/extension-apiserver-authentication as
	// it does in a real cluster.
	adminCert, adminKey, err := e.serverCert("admin", "rotor-manager-admin")
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.ManagerAdmin = append(e.ManagerAdmin, "127.0.0.1:"+strconv.Itoa(admin))
	e.ManagerWebhook = append(e.ManagerWebhook, "https://127.0.0.1:"+strconv.Itoa(webhook)+admission.Path)
	e.mu.Unlock()
	name := "rotor-manager-" + strconv.Itoa(i)
	args := append([]string{
		"--admin-listen=127.0.0.1:" + strconv.Itoa(admin), "--tls-cert-file=" + adminCert, "--tls-key-file=" + adminKey,
		"--webhook-listen=127.0.0.1:" + strconv.Itoa(webhook), "--webhook-cert-file=" + cert, "--webhook-key-file=" + key,
		"--name=" + name, "--shard-prefix=" + ShardPrefix,
		"--partitions=" + strconv.Itoa(o.Partitions), "--session-ttl=" + o.LeaseTTL.String(),
		"--listen=127.0.0.1:" + strconv.Itoa(port), "--kubeconfig=" + e.Control.Kubeconfig, "--namespace=" + RotorNamespace,
		"--pprof",
	}, e.EtcdFlagsAs(etcdroles.Manager)...)
	args = append(args, e.managerDataArgs()...)
	args = append(args, o.ManagerArgs...)
	return e.StartProcess(name, "rotor-manager", args, nil)
}

// webhookCert issues, once per environment, the serving certificate the
// managers' admission webhooks present (127.0.0.1, signed by the sandbox CA).
func (e *Env) webhookCert() (cert, key string, err error) {
	return e.serverCert("webhook", "rotor-webhook")
}

// serverCert issues, once per environment, a serving certificate for
// 127.0.0.1 signed by the sandbox CA, as pki/NAME.crt and pki/NAME.key.
func (e *Env) serverCert(name, cn string) (cert, key string, err error) {
	dir := filepath.Join(e.Dir, "pki")
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if _, err := os.Stat(key); err == nil {
		return cert, key, nil
	}
	return e.pki.issue(dir, name, cn, true)
}

// CAFile is the sandbox CA: it signed every serving certificate, and the
// apiservers and the managers' admin APIs trust the client certificates it
// signs.
func (e *Env) CAFile() string { return filepath.Join(e.Dir, "pki", "ca.crt") }

// IssueClientCert writes a client certificate of the sandbox CA for user
// name in groups, which the control apiserver and the managers' admin APIs
// accept as that user (pki/client-NAME.crt and .key).
func (e *Env) IssueClientCert(name string, groups ...string) (cert, key string, err error) {
	if e.pki == nil {
		return "", "", fmt.Errorf("localcluster: the CA key is only held by the process that started the sandbox")
	}
	return e.pki.issue(filepath.Join(e.Dir, "pki"), "client-"+name, name, false, groups...)
}

// WebhookName is the sandbox's ValidatingWebhookConfiguration.
const WebhookName = "rotor-validate"

// RegisterWebhook makes the control apiserver send every Workflow and
// WorkflowTemplate created or updated to the webhook at url (one of
// ManagerWebhook), as the chart does through its Service. Its failure
// policy is Ignore, as in the chart: a manager down must not stop tenants
// submitting work, and the engine validates every object again.
func (e *Env) RegisterWebhook(ctx context.Context, url string) error {
	kube, _, err := e.Clients()
	if err != nil {
		return err
	}
	ignore, none, timeout := admissionregistrationv1.Ignore, admissionregistrationv1.SideEffectClassNone, int32(5)
	equivalent := admissionregistrationv1.Equivalent
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: WebhookName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "workflows.rotor.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: e.pki.CAPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"rotor.dev"}, APIVersions: []string{"v1alpha1"},
					Resources: []string{"workflows", "workflowtemplates"}},
			}},
			FailurePolicy: &ignore, SideEffects: &none, TimeoutSeconds: &timeout, MatchPolicy: &equivalent,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	api := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	old, err := api.Get(ctx, WebhookName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, cfg, metav1.CreateOptions{})
	case err == nil:
		cfg.ResourceVersion = old.ResourceVersion
		_, err = api.Update(ctx, cfg, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("register the admission webhook %s: %w", url, err)
	}
	return nil
}

// StartShardedPropeller starts replica i of rotor-propeller in sharded mode.
func (e *Env) StartShardedPropeller(i int, o ShardingOptions) (*Process, error) {
	o.defaults()
	args := []string{"--shard", "--name=rotor-propeller-" + strconv.Itoa(i),
		"--partitions=" + strconv.Itoa(o.Partitions), "--lease-ttl=" + o.LeaseTTL.String(),
		"--shard-prefix=" + ShardPrefix, "--drain-timeout=30s"}
	return e.StartPropeller(i, append(args, o.ReplicaArgs...)...)
}
