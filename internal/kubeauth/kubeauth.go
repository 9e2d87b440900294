// Package kubeauth guards an HTTP endpoint the way the Kubernetes
// components guard theirs: the caller's bearer token is checked with a
// TokenReview and the user it names is authorized with a
// SubjectAccessReview on the request's non-resource URL (verb get on
// /metrics, say), so RBAC decides who may scrape or profile a Rotor
// process:
//
//	rules: [{nonResourceURLs: [/metrics], verbs: [get]}]
//
// Decisions are cached briefly by token and path, so a scraper does not
// cost the apiserver two requests per scrape.
package kubeauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// How long a decision is reused: an allowed one long enough to spare the
// apiserver (a scrape every 15-30 s), a denied one short so a new
// RoleBinding takes effect fast.
const (
	AllowedTTL = time.Minute
	DeniedTTL  = 10 * time.Second
	maxEntries = 1024
)

// Reviewer asks the apiserver who a token is and what they may do.
type Reviewer interface {
	// Authenticate returns the token's user, or ok false.
	Authenticate(ctx context.Context, token string) (user authnv1.UserInfo, ok bool, err error)
	// Authorize says whether user may verb path.
	Authorize(ctx context.Context, user authnv1.UserInfo, verb, path string) (allowed bool, reason string, err error)
}

// Guard wraps handlers with authentication and authorization.
type Guard struct {
	Reviewer Reviewer
	Clock    clock.PassiveClock

	mu    sync.Mutex
	cache map[[32]byte]decision
}

type decision struct {
	status  int
	message string
	until   time.Time
}

// Wrap serves next only to callers RBAC allows to get the request's path.
// No or an invalid token: 401; a user without the permission: 403 naming
// the verb and URL; the apiserver unreachable: 503 (not cached).
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, msg := g.decide(r)
		if status != http.StatusOK {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rotor"`)
			}
			http.Error(w, msg, status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Guard) decide(r *http.Request) (int, string) {
	token, ok := bearer(r)
	if !ok {
		return http.StatusUnauthorized, "Unauthorized: send a bearer token (a ServiceAccount token with get on " + r.URL.Path + ")"
	}
	verb := strings.ToLower(r.Method)
	if verb == "head" {
		verb = "get"
	}
	key := sha256.Sum256([]byte(verb + " " + r.URL.Path + " " + token))
	now := g.Clock.Now()
	g.mu.Lock()
	if d, ok := g.cache[key]; ok && now.Before(d.until) {
		g.mu.Unlock()
		return d.status, d.message
	}
	g.mu.Unlock()
	d, cacheable := g.review(r.Context(), token, verb, r.URL.Path)
	if cacheable {
		ttl := DeniedTTL
		if d.status == http.StatusOK {
			ttl = AllowedTTL
		}
		d.until = now.Add(ttl)
		g.mu.Lock()
		if g.cache == nil || len(g.cache) >= maxEntries {
			g.cache = map[[32]byte]decision{} // bounded: start over rather than grow
		}
		g.cache[key] = d
		g.mu.Unlock()
	}
	return d.status, d.message
}

func (g *Guard) review(ctx context.Context, token, verb, path string) (decision, bool) {
	user, ok, err := g.Reviewer.Authenticate(ctx, token)
	if err != nil {
		return decision{status: http.StatusServiceUnavailable, message: "cannot check the token with the apiserver (TokenReview): " + err.Error()}, false
	}
	if !ok {
		return decision{status: http.StatusUnauthorized, message: "Unauthorized: the apiserver does not accept this token"}, true
	}
	allowed, reason, err := g.Reviewer.Authorize(ctx, user, verb, path)
	if err != nil {
		return decision{status: http.StatusServiceUnavailable, message: "cannot authorize with the apiserver (SubjectAccessReview): " + err.Error()}, false
	}
	if !allowed {
		msg := fmt.Sprintf("Forbidden: user %q may not %s %s (grant a ClusterRole with nonResourceURLs [%s], verbs [%s])", user.Username, verb, path, path, verb)
		if reason != "" {
			msg += ": " + reason
		}
		return decision{status: http.StatusForbidden, message: msg}, true
	}
	return decision{status: http.StatusOK}, true
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// APIServer is the Reviewer that asks a Kubernetes apiserver. Its own
// credential needs create on tokenreviews.authentication.k8s.io and
// subjectaccessreviews.authorization.k8s.io.
type APIServer struct{ Kube kubernetes.Interface }

// Authenticate implements Reviewer.
func (a APIServer) Authenticate(ctx context.Context, token string) (authnv1.UserInfo, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr, err := a.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return authnv1.UserInfo{}, false, err
	}
	return tr.Status.User, tr.Status.Authenticated, nil
}

// Authorize implements Reviewer.
func (a APIServer) Authorize(ctx context.Context, u authnv1.UserInfo, verb, path string) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	extra := map[string]authzv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := a.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return sar.Status.Allowed, sar.Status.Reason, nil
}
