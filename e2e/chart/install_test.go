package chart

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rotor-dev/rotor/cluster"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/etcdclient"
	"github.com/rotor-dev/rotor/internal/etcdroles"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// installLimit bounds the whole start (clusters, controllers, image
// push, helm install, pods Ready) on a loaded 2-core CI machine; `rotor dev
// up --install chart` is measured against the 60 s goal in the docs.
const installLimit = 3 * time.Minute

// rotorPods lists Rotor's pods by component label.
func rotorPods(t *testing.T, component string) []corev1.Pod {
	t.Helper()
	pods, err := env.Kube.CoreV1().Pods(localcluster.RotorNamespace).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=" + component,
	})
	if err != nil {
		t.Fatalf("list %s pods: %v", component, err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

// testInstall: after helm install every Rotor pod is Ready through its
// probes, from the sandbox registry's images, running as its own
// ServiceAccount; the replicas share the partitions; the sample
// workflows end as they should, with task pods on both targets.
func testInstall(t *testing.T) {
	t.Logf("environment up and every Rotor pod Ready in %s", installTook.Round(time.Millisecond))
	if installTook > installLimit {
		t.Errorf("install took %s, limit %s", installTook, installLimit)
	}
	managers, props := rotorPods(t, "manager"), rotorPods(t, "propeller")
	if len(managers) != 2 || len(props) != replicas {
		t.Fatalf("%d manager and %d propeller pods, want 2 and %d", len(managers), len(props), replicas)
	}
	for _, p := range append(managers, props...) {
		checkPodReadyFromImage(t, &p)
	}
	checkEtcdTLS(t, append(managers, props...))
	checkMetricsAuth(t, append(managers, props...))
	etcd := env.Etcd(t)
	doc, err := harness.WaitShardMap(context.Background(), etcd, replicas, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range doc.Map {
		if !strings.HasPrefix(part.Owner, "rotor-propeller-") {
			t.Fatalf("partition owned by %q, want a StatefulSet pod name", part.Owner)
		}
	}

	tenant, err := env.KubeconfigFor(env.Control, harness.UserTenant)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.CreateNamespaces(context.Background(), "team-a", "team-b"); err != nil {
		t.Fatal(err)
	}
	if err := env.CreateExampleSecrets(context.Background(), "team-a", "team-b"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(env.RepoRoot, "hack", "run-examples.sh"))
	cmd.Dir = env.RepoRoot
	// The chart sandbox has no S3 server: the data plane's examples are
	// the process sandbox's (e2e TestExamples, make dev).
	cmd.Env = append(os.Environ(), "KUBECONFIG="+tenant, "ROTOR="+filepath.Join(env.RepoRoot, "bin", "rotor"), "ROTOR_EXAMPLES_WITHOUT=data-plane")
	out, err := cmd.CombinedOutput()
	if err != nil {
		env.Report(t)
		t.Fatalf("sample workflows: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "every example ended as expected") {
		t.Fatalf("run-examples.sh did not report every example ending as expected:\n%s", out)
	}
	clusters := map[string]int{}
	for _, ns := range []string{"team-a", "team-b"} {
		wfs, err := env.Rotor.RotorV1alpha1().Workflows(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, wf := range wfs.Items {
			for _, n := range wf.Status.Nodes {
				for _, a := range n.Attempts {
					if a.Cluster != "" {
						clusters[a.Cluster]++
					}
				}
			}
		}
	}
	t.Logf("sample workflows' attempts per target: %v", clusters)
	if clusters["target-1"] == 0 || clusters["target-2"] == 0 {
		t.Fatalf("attempts per target %v: want task pods on both targets", clusters)
	}
	tenantsThroughLaunchers(t)
	flakyMap(t)
	ttlDeletesWorkflows(t)
	shardsThroughAdminAPI(t, managers)
	webhookServesTheChartCertificate(t, managers)
}

// tenantsThroughLaunchers: in each target, the rotor-target chart's
// ServiceAccount may not create pods or write Secrets itself, so the
// sample workflows' pods exist only because Rotor created them as each
// tenant's launcher; team-a's launcher may create pods in team-a and not
// in team-b; the pods run as rotor-task, and the namespaces carry Pod
// Security restricted. SubjectAccessReviews ask the target's own
// authorizer.
func tenantsThroughLaunchers(t *testing.T) {
	ctx := context.Background()
	rotorSA := "system:serviceaccount:" + localcluster.RotorNamespace + ":" + localcluster.TargetServiceAccount
	for i, target := range env.Env.Targets {
		kube := env.Targets[i]
		can := func(user, verb, resource, ns string) bool {
			t.Helper()
			r, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user, Groups: []string{"system:serviceaccounts", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: resource, Namespace: ns}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: SubjectAccessReview: %v", target.Name, err)
			}
			return r.Status.Allowed
		}
		for _, c := range []struct {
			user, verb, resource, ns string
			want                     bool
		}{
			{rotorSA, "create", "pods", "team-a", false},
			{rotorSA, "create", "secrets", "team-a", false},
			{cluster.LauncherUser("team-a"), "create", "pods", "team-a", true},
			{cluster.LauncherUser("team-a"), "create", "pods", "team-b", false},
			{cluster.LauncherUser("team-a"), "get", "secrets", "team-b", false},
		} {
			if got := can(c.user, c.verb, c.resource, c.ns); got != c.want {
				t.Errorf("%s: may %s %s %s in %s: %v, want %v", target.Name, c.user, c.verb, c.resource, c.ns, got, c.want)
			}
		}
		pods, err := kube.CoreV1().Pods("team-a").List(ctx, metav1.ListOptions{LabelSelector: pod.LabelManaged + "=true"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			t.Fatalf("%s: no task pod in team-a: the sample workflows ran none there", target.Name)
		}
		for _, p := range pods.Items {
			if p.Spec.ServiceAccountName != tenancy.TaskServiceAccount {
				t.Errorf("%s: pod %s runs as %q, want %s", target.Name, p.Name, p.Spec.ServiceAccountName, tenancy.TaskServiceAccount)
			}
		}
		ns, err := kube.CoreV1().Namespaces().Get(ctx, "team-a", metav1.GetOptions{})
		if err != nil || ns.Labels[pod.LabelPSAEnforce] != "restricted" {
			t.Errorf("%s: namespace team-a %v, %v: want %s=restricted", target.Name, ns.Labels, err, pod.LabelPSAEnforce)
		}
		t.Logf("%s: %d task pods in team-a, all as %s, created through the launcher", target.Name, len(pods.Items), tenancy.TaskServiceAccount)
	}
}

// webhookCA is the chart's webhook CA at install; the upgrade must keep it.
var webhookCA []byte

// webhookServesTheChartCertificate: the chart registered the webhook with
// the CA of the Secret it made, and every manager serves it on its pod's
// address with that Secret's certificate (verified for the Service's DNS
// name, as the apiserver verifies it), refusing a cyclic workflow with
// the cycle named. The sandbox's pod addresses are loopback ones, which
// EndpointSlices refuse, so its Services have no endpoints and the
// apiserver fails open there (failurePolicy Ignore): kubectl apply's
// refusal is tested in the process sandbox (e2e/sharding
// TestAdmissionWebhook).
func webhookServesTheChartCertificate(t *testing.T, managers []corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	const name, svcHost = "rotor-manager-webhook", "rotor-manager-webhook." + localcluster.RotorNamespace + ".svc"
	sec, err := env.Kube.CoreV1().Secrets(localcluster.RotorNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the webhook's Secret: %v", err)
	}
	webhookCA = sec.Data["ca.crt"]
	cfg, err := env.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "rotor-validate-"+localcluster.RotorNamespace, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the webhook's registration: %v", err)
	}
	if len(cfg.Webhooks) != 1 {
		t.Fatalf("%d webhooks registered, want 1", len(cfg.Webhooks))
	}
	w := cfg.Webhooks[0]
	if !bytes.Equal(w.ClientConfig.CABundle, webhookCA) || len(webhookCA) == 0 || w.ClientConfig.Service == nil ||
		w.ClientConfig.Service.Name != name || w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Ignore {
		t.Fatalf("registration %+v: want caBundle = the Secret's ca.crt (%d bytes), Service %s, failurePolicy Ignore", w, len(webhookCA), name)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(webhookCA) {
		t.Fatalf("the Secret's ca.crt is not a PEM certificate")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: svcHost}}}
	review, _ := json.Marshal(map[string]any{
		"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
		"request": map[string]any{
			"uid": "chart-1", "operation": "CREATE", "name": "loop", "namespace": "team-a",
			"kind":   map[string]any{"group": "rotor.dev", "version": "v1alpha1", "kind": "Workflow"},
			"object": json.RawMessage(cyclicJSON(t)),
		},
	})
	for _, m := range managers {
		url := "https://" + m.Status.PodIP + ":9443/validate"
		resp, err := client.Post(url, "application/json", bytes.NewReader(review))
		if err != nil {
			t.Fatalf("manager %s's webhook at %s, verified as %s: %v", m.Name, url, svcHost, err)
		}
		var out struct {
			Response struct {
				UID     string `json:"uid"`
				Allowed bool   `json:"allowed"`
				Status  struct {
					Message string `json:"message"`
					Code    int    `json:"code"`
				} `json:"status"`
			} `json:"response"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		r := out.Response
		if err != nil || r.UID != "chart-1" || r.Allowed || r.Status.Code != 422 || !strings.Contains(r.Status.Message, "a -> b -> a") {
			t.Fatalf("manager %s's answer to a cyclic workflow: %+v (%v); want uid chart-1 refused with 422 naming a -> b -> a", m.Name, r, err)
		}
	}
}

func cyclicJSON(t *testing.T) []byte {
	t.Helper()
	docs, err := manifest.ToJSON([]byte(harness.CyclicWorkflow("loop")))
	if err != nil || len(docs) != 1 {
		t.Fatalf("cyclic workflow: %v", err)
	}
	return docs[0]
}

// flakyMap runs a map whose 14 children each fail once and succeed on
// their retry: more than ten similar events on one workflow, which
// client-go's event recorder folds into one and then updates with PATCH.
// So the chart's patch on events is exercised, not only granted.
func flakyMap(t *testing.T) {
	t.Helper()
	marks := t.TempDir()
	src := strings.ReplaceAll(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: flaky-map, namespace: team-b}
spec:
  inputs:
    xs: {type: array, value: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]}
  tasks:
    once:
      inputs: {x: integer}
      outputs: {y: integer}
      retries: 1
      container:
        image: busybox
        command: [sh, -c, 'm=MARKS/x-{{inputs.x}}; if [ -e "$m" ]; then echo "{\"y\": {{inputs.x}}}" > "$ROTOR_OUTPUT_FILE"; else touch "$m"; exit 1; fi']
  nodes:
    - name: each
      map: {task: once, over: "{{workflow.inputs.xs}}", item: x, concurrency: 14}
`, "MARKS", marks)
	wf := &v1alpha1.Workflow{}
	if err := manifest.Unmarshal([]byte(src), wf); err != nil {
		t.Fatal(err)
	}
	created, err := env.Rotor.RotorV1alpha1().Workflows("team-b").Create(context.Background(), wf, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := env.WaitWorkflow(t, created, 2*time.Minute, harness.Ended)
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("flaky map ended %s: %s", got.Status.Phase, got.Status.Message)
	}
	retried := 0
	for _, n := range got.Status.Nodes {
		if len(n.Attempts) == 2 {
			retried++
		}
	}
	if retried != 14 {
		t.Fatalf("%d of the 14 map children took two attempts, want all", retried)
	}
}

// ttlDeletesWorkflows: a workflow with spec.ttl.afterSuccess is deleted
// by its replica (with the chart's delete grant) once it has succeeded.
func ttlDeletesWorkflows(t *testing.T) {
	ctx := context.Background()
	wf := &v1alpha1.Workflow{}
	if err := manifest.Unmarshal([]byte(`
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: short-lived}
spec:
  ttl: {afterSuccess: 1s}
  tasks:
    t: {container: {image: busybox, command: [sh, -ec, 'true']}}
  nodes: [{name: a, task: t}]
`), wf); err != nil {
		t.Fatal(err)
	}
	created, err := env.Rotor.RotorV1alpha1().Workflows("team-b").Create(ctx, wf, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ended := env.WaitWorkflow(t, created, 2*time.Minute, harness.Ended)
	if ended.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("short-lived ended %s: %s", ended.Status.Phase, ended.Status.Message)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := env.Rotor.RotorV1alpha1().Workflows("team-b").Get(ctx, "short-lived", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after it succeeded, short-lived is still there (%v): its TTL of 1s deleted nothing", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shardsThroughAdminAPI: rotor shards reads the shard map from a
// manager's admin API, on its pod's address, over TLS with the chart's own
// certificate (verified with the CA of its Secret, for the Service's
// name) and as the sandbox admin's kubeconfig user; without credentials
// the same call is refused as Unauthenticated.
func shardsThroughAdminAPI(t *testing.T, managers []corev1.Pod) {
	t.Helper()
	sec, err := env.Kube.CoreV1().Secrets(localcluster.RotorNamespace).Get(context.Background(), "rotor-manager-admin-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's admin TLS Secret: %v", err)
	}
	ca := filepath.Join(t.TempDir(), "admin-ca.crt")
	if err := os.WriteFile(ca, sec.Data["ca.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	addr := managers[0].Status.PodIP + ":9092"
	shards := func(kubeconfig string) (string, error) {
		cmd := exec.Command(filepath.Join(env.RepoRoot, "bin", "rotor"), "shards", "--manager", addr, "--tls-ca", ca,
			"--tls-server-name", "rotor-manager-admin."+localcluster.RotorNamespace+".svc", "--kubeconfig", kubeconfig)
		cmd.Env = append(os.Environ(), "KUBECONFIG=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := shards(env.Control.Kubeconfig)
	if err != nil {
		t.Fatalf("rotor shards --manager %s: %v\n%s", addr, err, out)
	}
	for _, want := range []string{"rotor-propeller-0", "rotor-propeller-1", "rotor-propeller-2", "team-a"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotor shards does not show %s:\n%s", want, out)
		}
	}
	if out, err := shards(env.WriteKubeconfig(t, "anonymous", clientcmdapi.AuthInfo{})); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Fatalf("rotor shards without credentials: %v\n%s\nwant refused as Unauthenticated", err, out)
	}
}

// checkPodReadyFromImage: the pod is Ready, has readiness and liveness
// probes (so Ready came from /readyz), runs the sandbox registry's image
// as its own ServiceAccount, with the restricted security context.
func checkPodReadyFromImage(t *testing.T, p *corev1.Pod) {
	t.Helper()
	ready := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		t.Errorf("pod %s is not Ready: %+v", p.Name, p.Status.Conditions)
	}
	if !strings.HasPrefix(p.Spec.ServiceAccountName, "rotor-") {
		t.Errorf("pod %s runs as ServiceAccount %q, want the chart's", p.Name, p.Spec.ServiceAccountName)
	}
	for _, c := range p.Spec.Containers {
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("pod %s container %s: readiness probe %+v, want GET /readyz", p.Name, c.Name, c.ReadinessProbe)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("pod %s container %s: liveness probe %+v, want GET /healthz", p.Name, c.Name, c.LivenessProbe)
		}
		if !strings.HasPrefix(c.Image, env.Registry+"/") {
			t.Errorf("pod %s container %s: image %s, want one from the sandbox registry %s", p.Name, c.Name, c.Image, env.Registry)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("pod %s container %s: security context %+v, want non-root with a read-only root", p.Name, c.Name, sc)
		}
	}
}

// checkEtcdTLS: the sandbox's etcd serves TLS, refuses a client without
// a certificate and has auth on, so the shard map the replicas share
// proves they connected with the client certificates the chart mounted:
// each component its own Secret, and so its own etcd user (the roles
// themselves are TestEtcdRoles' in e2e/sharding).
func checkEtcdTLS(t *testing.T, pods []corev1.Pod) {
	t.Helper()
	if !strings.HasPrefix(env.EtcdEndpoint, "https://") {
		t.Fatalf("etcd endpoint %s: the chart sandbox's etcd should serve TLS", env.EtcdEndpoint)
	}
	noCert := etcdclient.Flags{Endpoints: env.EtcdEndpoint, CAFile: env.EtcdCAFile}
	c, err := noCert.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "/rotor/"); err == nil {
		t.Fatal("etcd answered a client without a certificate")
	}
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	st, err := env.Etcd(t).AuthStatus(actx)
	if err != nil || !st.Enabled {
		t.Fatalf("etcd auth status %+v, %v: want auth on in the chart sandbox", st, err)
	}
	for _, p := range pods {
		args := strings.Join(p.Spec.Containers[0].Args, " ")
		if !strings.Contains(args, "--etcd-cert-file=") || !strings.Contains(args, "--etcd-ca-file=") {
			t.Fatalf("pod %s connects to etcd without the chart's client certificate: %s", p.Name, args)
		}
		user := etcdroles.Propeller
		if p.Labels["app.kubernetes.io/component"] == "manager" {
			user = etcdroles.Manager
		}
		var secret string
		for _, v := range p.Spec.Volumes {
			if v.Name == "etcd-tls" && v.Secret != nil {
				secret = v.Secret.SecretName
			}
		}
		if want := localcluster.EtcdUserSecret(user); secret != want {
			t.Errorf("pod %s mounts etcd Secret %q, want %s (etcd user %s)", p.Name, secret, want, user)
		}
	}
}
