package volume

import (
	"context"
	"fmt"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxTokenAge is the kubelet's cap on how long it keeps a token before
// asking for a new one, whatever its expiry (the API server may extend a
// kube-api-access token's life to a year).
const maxTokenAge = 24 * time.Hour

// tokenRetry is the wait after a failed token request.
const tokenRetry = 10 * time.Second

// token is one serviceAccountToken file to keep fresh.
type token struct {
	dir, path string
	mode      os.FileMode
	audience  string
	seconds   int64
	refreshAt time.Time
}

// RefreshAt is when a token issued at issued and expiring at expires is
// replaced: after 80% of its life, like a kubelet, and within a day.
func RefreshAt(issued, expires time.Time) time.Time {
	life := expires.Sub(issued) * 8 / 10
	return issued.Add(min(life, maxTokenAge))
}

func (r *Renderer) firstToken(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, mode *int32, dir string, out *Pod) ([]File, error) {
	p, err := cleanPath(src.Path)
	if err != nil {
		return nil, err
	}
	t := &token{dir: dir, path: p, mode: modeOr(mode, DefaultMode), audience: src.Audience, seconds: 3600}
	if src.ExpirationSeconds != nil {
		t.seconds = *src.ExpirationSeconds
	}
	f, err := r.issue(ctx, pod, t)
	if err != nil {
		return nil, err
	}
	out.tokens = append(out.tokens, t)
	return []File{f}, nil
}

// issue asks the TokenRequest API for a token of the pod's service
// account bound to the pod, so it dies with the pod.
func (r *Renderer) issue(ctx context.Context, pod *corev1.Pod, t *token) (File, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &t.seconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if t.audience != "" {
		req.Spec.Audiences = []string{t.audience}
	}
	issued := r.Clock.Now()
	tr, err := r.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return File{}, fmt.Errorf("request a token for service account %s/%s: %w", pod.Namespace, sa, err)
	}
	t.refreshAt = RefreshAt(issued, tr.Status.ExpirationTimestamp.Time)
	return File{Path: t.path, Data: []byte(tr.Status.Token), Mode: t.mode}, nil
}

// Refresh rewrites p's tokens as they come due until ctx ends.
func (r *Renderer) Refresh(ctx context.Context, pod *corev1.Pod, p *Pod) {
	for len(p.tokens) > 0 {
		next := p.tokens[0]
		for _, t := range p.tokens[1:] {
			if t.refreshAt.Before(next.refreshAt) {
				next = t
			}
		}
		timer := r.Clock.NewTimer(next.refreshAt.Sub(r.Clock.Now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		f, err := r.issue(ctx, pod, next)
		if err == nil {
			err = Write(next.dir, []File{f}, p.gid)
		}
		if err != nil {
			next.refreshAt = r.Clock.Now().Add(tokenRetry)
			if r.OnError != nil && ctx.Err() == nil {
				r.OnError(err)
			}
		}
	}
}
