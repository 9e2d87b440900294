package pod

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/rotor-dev/rotor/plugins"
)

// Secrets copied into a target carry these: LabelManaged says Rotor owns
// the copy (and may update or delete it), AnnotSecretSource the control
// cluster Secret's resourceVersion it was made from.
const (
	LabelSecretCopy   = "rotor.dev/secret-copy"
	AnnotSecretSource = "rotor.dev/source-resource-version"
	// ReasonSecretNotFound fails a node whose task references a Secret
	// (or a key) that exists neither in the control cluster's namespace
	// nor in the target's.
	ReasonSecretNotFound = plugins.ReasonSecretNotFound
)

// secretRefs lists the Secrets a container's env references, and whether
// every reference to each is optional.
func secretRefs(env []corev1.EnvVar) (names []string, optional map[string]bool) {
	optional = map[string]bool{}
	for _, e := range env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		r := e.ValueFrom.SecretKeyRef
		opt := r.Optional != nil && *r.Optional
		if prev, seen := optional[r.Name]; seen {
			optional[r.Name] = prev && opt
			continue
		}
		optional[r.Name] = opt
		names = append(names, r.Name)
	}
	sort.Strings(names)
	return names, optional
}

// copySecrets makes the Secrets the pod's env references available in the
// target's namespace before the pod is created, so a tenant keeps them in
// the control cluster only, where their RBAC is. A Secret that already
// exists in the target and is not Rotor's copy is the platform's own and
// is used as it is. Otherwise the control cluster's Secret is copied
// (every key, so tasks referencing different keys of one Secret do not
// undo each other) and the copy is updated when the source changed; a
// source deleted deletes the copy, so revoking a Secret reaches the
// targets at the next pod. Values never leave this function except into
// the target's Secret: errors and messages name Secrets, never contents.
// A non-nil PhaseInfo ends the attempt.
func (p *Plugin) copySecrets(ctx context.Context, tc *plugins.TaskContext, core corev1client.CoreV1Interface, pod *corev1.Pod) (*plugins.PhaseInfo, error) {
	names, optional := secretRefs(pod.Spec.Containers[0].Env)
	if len(names) == 0 || p.cfg.Secrets == nil {
		return nil, nil
	}
	ns := tc.ID.Namespace
	api := core.Secrets(ns)
	for _, name := range names {
		existing, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			existing = nil
		case err != nil:
			return nil, fmt.Errorf("read secret %s/%s in cluster %s: %w", ns, name, tc.Cluster.Name, err)
		case existing.Labels[LabelSecretCopy] != "true":
			continue // the platform's own Secret in the target
		}
		src, err := p.cfg.Secrets.Secret(ctx, ns, name)
		if apierrors.IsNotFound(err) {
			if existing != nil {
				// Revoked in the control cluster: so in the targets.
				if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("delete the copy of secret %s/%s in cluster %s, deleted in the control cluster: %w", ns, name, tc.Cluster.Name, err)
				}
			}
			if optional[name] {
				continue
			}
			return &plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonSecretNotFound,
				Message: fmt.Sprintf("the task's env references secret %q, which exists neither in namespace %s of the control cluster nor in cluster %s: create it in the control cluster (Rotor copies it to the cluster the pod runs on)", name, ns, tc.Cluster.Name)}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read secret %s/%s in the control cluster (the propeller needs get on secrets; or set --tenant-secrets=false and create it in each target): %w", ns, name, err)
		}
		if info := missingKey(pod.Spec.Containers[0].Env, src); info != nil {
			return info, nil
		}
		want := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
				Labels:      map[string]string{LabelManaged: "true", LabelSecretCopy: "true"},
				Annotations: map[string]string{AnnotSecretSource: src.ResourceVersion}},
			Type: src.Type, Data: src.Data,
		}
		switch {
		case existing == nil:
			_, err = api.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsNotFound(err) { // the namespace is new to this target
				if err = ensureNamespace(ctx, tc); err == nil {
					_, err = api.Create(ctx, want, metav1.CreateOptions{})
				}
			}
		case existing.Annotations[AnnotSecretSource] == src.ResourceVersion && maps.EqualFunc(existing.Data, src.Data, bytes.Equal):
			continue
		case existing.Type != src.Type: // a Secret's type is immutable
			if err = api.Delete(ctx, name, metav1.DeleteOptions{}); err == nil || apierrors.IsNotFound(err) {
				_, err = api.Create(ctx, want, metav1.CreateOptions{})
			}
		default:
			want.ResourceVersion = existing.ResourceVersion
			_, err = api.Update(ctx, want, metav1.UpdateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("copy secret %s/%s to cluster %s: %w", ns, name, tc.Cluster.Name, err)
		}
	}
	return nil, nil
}

// missingKey fails the attempt when a required key is not in the Secret:
// the kubelet would otherwise hold the pod in CreateContainerConfigError.
func missingKey(env []corev1.EnvVar, s *corev1.Secret) *plugins.PhaseInfo {
	for _, e := range env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != s.Name {
			continue
		}
		r := e.ValueFrom.SecretKeyRef
		if _, ok := s.Data[r.Key]; !ok && (r.Optional == nil || !*r.Optional) {
			return &plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonSecretNotFound,
				Message: fmt.Sprintf("env %s references key %q of secret %q in namespace %s, which has no such key", e.Name, r.Key, s.Name, s.Namespace)}
		}
	}
	return nil
}
