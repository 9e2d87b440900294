package container

import (
	"context"
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultPath is the PATH a container runtime sets when the image has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Sources reads the objects env vars refer to.
type Sources interface {
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
}

// EnvInput is what a container's environment is computed from.
type EnvInput struct {
	// Pod has its status.podIP(s) and hostIP(s) filled already.
	Pod       *corev1.Pod
	Container *corev1.Container
	Sources   Sources
	// Service vars (KUBERNETES_SERVICE_HOST, ...) come first, can be
	// referred to by $(VAR) and overridden by the container.
	Service []Var
	// Allocatable stands in for unset limits in resourceFieldRef, as the
	// node's allocatable does for a kubelet.
	Allocatable corev1.ResourceList
}

// Var is one environment variable.
type Var struct{ Name, Value string }

// Env computes the container's environment in the kubelet's order: service
// vars, then envFrom sources, then env entries, each later one overriding
// an earlier one of the same name. An error (a missing required key or
// object) is a CreateContainerConfigError.
func Env(ctx context.Context, in EnvInput) ([]Var, error) {
	e := newEnvSet()
	for _, v := range in.Service {
		e.set(v.Name, v.Value)
	}
	for _, from := range in.Container.EnvFrom {
		if err := envFrom(ctx, in, from, e); err != nil {
			return nil, err
		}
	}
	for _, ev := range in.Container.Env {
		if ev.ValueFrom == nil {
			e.set(ev.Name, ExpandVars(ev.Value, e.values))
			continue
		}
		v, ok, err := valueFrom(ctx, in, ev.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", ev.Name, err)
		}
		if ok {
			e.set(ev.Name, v)
		}
	}
	return e.list(), nil
}

// Map returns vars as a map, later entries winning.
func Map(vars []Var) map[string]string {
	m := make(map[string]string, len(vars))
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m
}

// Merge returns the process environment: the image's env ("K=V" entries)
// overridden by the container's, with PATH defaulted.
func Merge(image []string, vars []Var) []string {
	e := newEnvSet()
	for _, kv := range image {
		k, v, _ := strings.Cut(kv, "=")
		e.set(k, v)
	}
	for _, v := range vars {
		e.set(v.Name, v.Value)
	}
	if _, ok := e.values["PATH"]; !ok {
		e.set("PATH", DefaultPath)
	}
	out := make([]string, 0, len(e.names))
	for _, v := range e.list() {
		out = append(out, v.Name+"="+v.Value)
	}
	return out
}

func envFrom(ctx context.Context, in EnvInput, from corev1.EnvFromSource, e *envSet) error {
	ns := in.Pod.Namespace
	var data map[string]string
	switch {
	case from.ConfigMapRef != nil:
		cm, err := in.Sources.ConfigMap(ctx, ns, from.ConfigMapRef.Name)
		if optionalMissing(err, from.ConfigMapRef.Optional) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("envFrom config map %s: %w", from.ConfigMapRef.Name, err)
		}
		data = cm.Data
	case from.SecretRef != nil:
		s, err := in.Sources.Secret(ctx, ns, from.SecretRef.Name)
		if optionalMissing(err, from.SecretRef.Optional) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("envFrom secret %s: %w", from.SecretRef.Name, err)
		}
		data = map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
	}
	for _, k := range sortedKeys(data) {
		name := from.Prefix + k
		if len(validation.IsEnvVarName(name)) == 0 { // a kubelet skips invalid names too (and records an event)
			e.set(name, data[k])
		}
	}
	return nil
}

func valueFrom(ctx context.Context, in EnvInput, src *corev1.EnvVarSource) (string, bool, error) {
	ns := in.Pod.Namespace
	switch {
	case src.FieldRef != nil:
		v, err := FieldValue(in.Pod, src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := ResourceValue(in.Container, src.ResourceFieldRef, in.Allocatable)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := in.Sources.ConfigMap(ctx, ns, ref.Name)
		if optionalMissing(err, ref.Optional) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !isTrue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
		}
		return v, ok, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := in.Sources.Secret(ctx, ns, ref.Name)
		if optionalMissing(err, ref.Optional) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		v, ok := s.Data[ref.Key]
		if !ok && !isTrue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
		}
		return string(v), ok, nil
	}
	return "", false, fmt.Errorf("unsupported valueFrom source")
}

// FieldValue returns the value of a downward-API field path of pod.
func FieldValue(p *corev1.Pod, path string) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return p.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return p.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP":
		return p.Status.PodIP, nil
	case "status.podIPs":
		return joinIPs(p.Status.PodIPs, func(ip corev1.PodIP) string { return ip.IP }), nil
	case "status.hostIP":
		return p.Status.HostIP, nil
	case "status.hostIPs":
		return joinIPs(p.Status.HostIPs, func(ip corev1.HostIP) string { return ip.IP }), nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// ResourceValue returns a resourceFieldRef's value: the container's limit
// or request divided by the divisor, rounded up, with unset limits taken
// from allocatable.
func ResourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		q = allocatable[corev1.ResourceName(name)]
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}

func subscript(path, field string) (string, bool) {
	rest, ok := strings.CutPrefix(path, field+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

func joinIPs[T any](ips []T, ip func(T) string) string {
	out := make([]string, len(ips))
	for i, x := range ips {
		out[i] = ip(x)
	}
	return strings.Join(out, ",")
}

func optionalMissing(err error, optional *bool) bool {
	return err != nil && apierrors.IsNotFound(err) && isTrue(optional)
}

func isTrue(b *bool) bool { return b != nil && *b }
