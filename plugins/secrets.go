package plugins

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// SecretReader reads a Secret of a tenant's namespace in the control
// cluster: the pod plugin copies the ones task env references into the
// target, the http plugin reads header values from them.
type SecretReader interface {
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
}

// ReasonSecretNotFound fails a node whose task references a Secret or a
// key that does not exist.
const ReasonSecretNotFound = "SecretNotFound"
