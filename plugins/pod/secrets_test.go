package pod

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// controlSecrets is the control cluster's Secrets, by namespace/name.
type controlSecrets map[string]*corev1.Secret

func (c controlSecrets) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if s, ok := c[ns+"/"+name]; ok {
		return s.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func secretEnv(name, key string, optional bool) corev1.EnvVar {
	return corev1.EnvVar{Name: strings.ToUpper(key), ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: &optional}}}
}

// TestCopySecrets: a referenced Secret is copied from the control cluster
// into the target's namespace with every key, updated
// when the source changes, deleted when the source is; the platform's own
// Secret in the target is left alone and used; a missing Secret or key
// fails the attempt naming it, before any pod exists; an optional one
// does not.
func TestCopySecrets(t *testing.T) {
	ctx := context.Background()
	target := fake.NewClientset()
	src := controlSecrets{"team-a/api": {ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "team-a", ResourceVersion: "1"},
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"token": []byte("s3cret"), "user": []byte("bob")}}}
	p := New(Config{Secrets: src})
	tc := func(env ...corev1.EnvVar) *plugins.TaskContext {
		return &plugins.TaskContext{
			ID:      plugins.TaskID{Namespace: "team-a", Workflow: "wf", WorkflowUID: "uid", Node: "a"},
			Task:    &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox", Env: env}},
			Cluster: &plugins.Cluster{Name: "east", Client: target},
		}
	}
	run := func(c *plugins.TaskContext) *plugins.PhaseInfo {
		t.Helper()
		pod, err := p.Build(c, "wf-a-0")
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.copySecrets(ctx, c, target.CoreV1(), pod)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	copyOf := func() *corev1.Secret {
		s, err := target.CoreV1().Secrets("team-a").Get(ctx, "api", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			t.Fatal(err)
		}
		return s
	}

	if info := run(tc(secretEnv("api", "token", false))); info != nil {
		t.Fatalf("first copy: %+v", info)
	}
	c := copyOf()
	if c == nil || string(c.Data["token"]) != "s3cret" || string(c.Data["user"]) != "bob" || c.Labels[LabelSecretCopy] != "true" || c.Annotations[AnnotSecretSource] != "1" {
		t.Fatalf("the copy in the target: %+v, want both keys, labelled, from resourceVersion 1", c)
	}
	// (A namespace new to the target is made on NotFound: the fake has no
	// namespace lifecycle, so the e2e test covers that.)

	src["team-a/api"].Data["token"], src["team-a/api"].ResourceVersion = []byte("rotated"), "2"
	run(tc(secretEnv("api", "token", false)))
	if c := copyOf(); string(c.Data["token"]) != "rotated" || c.Annotations[AnnotSecretSource] != "2" {
		t.Fatalf("after the source rotated, the copy holds %q from %s", c.Data["token"], c.Annotations[AnnotSecretSource])
	}

	info := run(tc(secretEnv("api", "password", false)))
	if info == nil || info.Reason != ReasonSecretNotFound || !strings.Contains(info.Message, `key "password" of secret "api"`) {
		t.Fatalf("a missing key: %+v, want SecretNotFound naming the key", info)
	}
	if info := run(tc(secretEnv("api", "password", true))); info != nil {
		t.Fatalf("an optional missing key: %+v, want the pod created", info)
	}

	delete(src, "team-a/api")
	info = run(tc(secretEnv("api", "token", false)))
	if info == nil || info.Reason != ReasonSecretNotFound || !strings.Contains(info.Message, `secret "api", which exists neither in namespace team-a of the control cluster nor in cluster east`) {
		t.Fatalf("a source deleted: %+v, want SecretNotFound", info)
	}
	if c := copyOf(); c != nil {
		t.Fatalf("the copy outlived its source: %+v", c)
	}
	if info := run(tc(secretEnv("api", "token", true))); info != nil {
		t.Fatalf("an optional missing Secret: %+v, want the pod created", info)
	}

	// The platform's own Secret in the target is used, never replaced.
	own := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: "team-a"}, Data: map[string][]byte{"k": []byte("platform")}}
	if _, err := target.CoreV1().Secrets("team-a").Create(ctx, own, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	src["team-a/vault"] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: "team-a", ResourceVersion: "9"}, Data: map[string][]byte{"k": []byte("tenant")}}
	if info := run(tc(secretEnv("vault", "k", false))); info != nil {
		t.Fatalf("the platform's Secret: %+v", info)
	}
	if s, _ := target.CoreV1().Secrets("team-a").Get(ctx, "vault", metav1.GetOptions{}); string(s.Data["k"]) != "platform" {
		t.Fatalf("the platform's own Secret was overwritten with %q", s.Data["k"])
	}

	// Without a reader, references are left to the target.
	none := New(Config{})
	pod, _ := none.Build(tc(secretEnv("other", "x", false)), "wf-a-1")
	if info, err := none.copySecrets(ctx, tc(secretEnv("other", "x", false)), target.CoreV1(), pod); info != nil || err != nil {
		t.Fatalf("no reader: %+v %v, want nothing done", info, err)
	}
	if _, err := target.CoreV1().Secrets("team-a").Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("no reader made a copy: %v", err)
	}
}
