package container

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type fakeSources struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (f fakeSources) ConfigMap(_ context.Context, _, name string) (*corev1.ConfigMap, error) {
	if cm, ok := f.cms[name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f fakeSources) Secret(_ context.Context, _, name string) (*corev1.Secret, error) {
	if s, ok := f.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "rotor", UID: "u-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n1", ServiceAccountName: "rotor-manager"},
		Status:     corev1.PodStatus{PodIP: "127.1.0.9", HostIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.1.0.9"}}},
	}
}

var sources = fakeSources{
	cms:     map[string]*corev1.ConfigMap{"cfg": {Data: map[string]string{"level": "debug", "bad-name": "x", "b": "2"}}},
	secrets: map[string]*corev1.Secret{"sec": {Data: map[string][]byte{"token": []byte("s3cret")}}},
}

func field(path string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
}

func TestEnv(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		name string
		c    corev1.Container
		want []string // K=V in order
	}{
		{"service vars first and referable", corev1.Container{Env: []corev1.EnvVar{{Name: "API", Value: "https://$(KUBERNETES_SERVICE_HOST)"}}},
			[]string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "API=https://127.0.0.1"}},
		{"expansion sees earlier vars only", corev1.Container{Env: []corev1.EnvVar{{Name: "A", Value: "$(B)"}, {Name: "B", Value: "b"}, {Name: "C", Value: "$(B)"}}},
			[]string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "A=$(B)", "B=b", "C=b"}},
		{"field refs", corev1.Container{Env: []corev1.EnvVar{
			{Name: "IP", ValueFrom: field("status.podIP")}, {Name: "HOST", ValueFrom: field("status.hostIP")},
			{Name: "NAME", ValueFrom: field("metadata.name")}, {Name: "NS", ValueFrom: field("metadata.namespace")},
			{Name: "UID", ValueFrom: field("metadata.uid")}, {Name: "NODE", ValueFrom: field("spec.nodeName")},
			{Name: "SA", ValueFrom: field("spec.serviceAccountName")}, {Name: "APP", ValueFrom: field("metadata.labels['app']")},
			{Name: "BIND", Value: "$(IP):9090"},
		}}, []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "IP=127.1.0.9", "HOST=127.0.0.1", "NAME=web-0", "NS=rotor", "UID=u-1",
			"NODE=n1", "SA=rotor-manager", "APP=web", "BIND=127.1.0.9:9090"}},
		{"key refs", corev1.Container{Env: []corev1.EnvVar{
			{Name: "LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "level"}}},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "token"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: &yes}}},
		}}, []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "LEVEL=debug", "TOKEN=s3cret"}},
		{"envFrom then env overrides", corev1.Container{
			EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			Env:     []corev1.EnvVar{{Name: "CFG_b", Value: "override"}},
		}, []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "CFG_b=override", "CFG_bad-name=x", "CFG_level=debug"}},
		{"resource limits", corev1.Container{
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")}},
			Env: []corev1.EnvVar{
				{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
				{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			},
		}, []string{"KUBERNETES_SERVICE_HOST=127.0.0.1", "CPU=2", "MEM=1024"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars, err := Env(context.Background(), EnvInput{
				Pod: testPod(), Container: &tc.c, Sources: sources,
				Service:     []Var{{"KUBERNETES_SERVICE_HOST", "127.0.0.1"}},
				Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vars {
				got = append(got, v.Name+"="+v.Value)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Env =\n %q\nwant\n %q", got, tc.want)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		env        corev1.EnvVar
	}{
		{"missing key", "couldn't find key nope in ConfigMap rotor/cfg", corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "nope"}}}},
		{"missing secret", `secrets "gone" not found`, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}},
		{"unknown field", "unsupported fieldRef", corev1.EnvVar{Name: "X", ValueFrom: field("spec.nope")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := corev1.Container{Env: []corev1.EnvVar{tc.env}}
			_, err := Env(context.Background(), EnvInput{Pod: testPod(), Container: &c, Sources: sources})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Env error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	got := Merge([]string{"PATH=/bin", "LANG=C"}, []Var{{"LANG", "en"}, {"X", "1"}})
	if want := []string{"PATH=/bin", "LANG=en", "X=1"}; !slices.Equal(got, want) {
		t.Fatalf("Merge = %q, want %q", got, want)
	}
	if got := Merge(nil, nil); !slices.Equal(got, []string{"PATH=" + DefaultPath}) {
		t.Fatalf("Merge with no PATH = %q, want the default PATH", got)
	}
}
