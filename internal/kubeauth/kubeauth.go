// Package kubeauth authenticates and authorizes callers of Rotor's own
// endpoints the way the Kubernetes components do: the caller's identity
// comes from a bearer token checked with a TokenReview, or from a client
// certificate signed by the cluster's client CA, and what they may do is
// asked with a SubjectAccessReview, so RBAC decides. HTTP endpoints are
// authorized on their non-resource URL (verb get on /metrics):
//
//	rules: [{nonResourceURLs: [/metrics], verbs: [get]}]
//
// gRPC methods on a Rotor resource and verb (drain on shards.rotor.dev):
//
//	rules: [{apiGroups: [rotor.dev], resources: [shards], verbs: [drain]}]
//
// Decisions are cached briefly by identity and attributes, so a scraper
// or a watching console does not cost the apiserver two requests each time.
package kubeauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
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

// Attributes is what a caller asks to do: a non-resource URL (Path), or a
// verb on a resource of an API group, in a namespace if it is namespaced.
type Attributes struct {
	Verb string
	// Path is a non-resource URL (/metrics); empty for a resource.
	Path string
	// Group, Resource, Namespace and Name describe a resource.
	Group, Resource, Namespace, Name string
}

// String names the permission for an error message: "get /metrics",
// "drain shards.rotor.dev", "list cacheentries.rotor.dev in team-a".
func (a Attributes) String() string {
	if a.Path != "" {
		return a.Verb + " " + a.Path
	}
	s := a.Verb + " " + a.Resource
	if a.Group != "" {
		s += "." + a.Group
	}
	if a.Name != "" {
		s += " " + a.Name
	}
	if a.Namespace != "" {
		s += " in namespace " + a.Namespace
	}
	return s
}

// grant says what RBAC rule would allow a.
func (a Attributes) grant() string {
	if a.Path != "" {
		return fmt.Sprintf("a ClusterRole with nonResourceURLs [%s], verbs [%s]", a.Path, a.Verb)
	}
	kind := "a ClusterRole"
	if a.Namespace != "" {
		kind = "a Role in " + a.Namespace
	}
	return fmt.Sprintf("%s with apiGroups [%s], resources [%s], verbs [%s]", kind, a.Group, a.Resource, a.Verb)
}

// Reviewer asks the apiserver who a token is and what a user may do.
type Reviewer interface {
	// Authenticate returns the token's user, or ok false.
	Authenticate(ctx context.Context, token string) (user authnv1.UserInfo, ok bool, err error)
	// Authorize says whether user may do what attrs describe.
	Authorize(ctx context.Context, user authnv1.UserInfo, attrs Attributes) (allowed bool, reason string, err error)
}

// Outcome is a decision's kind; the HTTP and gRPC shells map it to their
// own status codes.
type Outcome int

const (
	Allowed Outcome = iota
	// Unauthenticated: no credentials, or ones the apiserver rejects.
	Unauthenticated
	// Forbidden: a known user without the permission.
	Forbidden
	// Unavailable: the apiserver could not be asked (never cached).
	Unavailable
)

// Decision is an outcome with the message to give the caller.
type Decision struct {
	Outcome Outcome
	Message string
	until   time.Time
}

// Credential is who the caller says they are: a bearer token, or a user
// already authenticated by the transport (a verified client certificate).
type Credential struct {
	Token string
	// User is set for a verified client certificate: CN and O, as the
	// apiserver reads them.
	User *authnv1.UserInfo
}

func (c Credential) key() string {
	if c.User != nil {
		g := append([]string(nil), c.User.Groups...)
		sort.Strings(g)
		return "cert\x00" + c.User.Username + "\x00" + strings.Join(g, "\x00")
	}
	return "token\x00" + c.Token
}

// Guard makes and caches decisions.
type Guard struct {
	Reviewer Reviewer
	Clock    clock.PassiveClock
	// Logger, if set, records every refused gRPC call (who asked what),
	// for the audit trail the apiserver's own log does not give.
	Logger *slog.Logger

	mu    sync.Mutex
	cache map[[32]byte]Decision
}

// Decide says whether the caller with cred may do attrs.
func (g *Guard) Decide(ctx context.Context, cred Credential, attrs Attributes) Decision {
	if cred.User == nil && cred.Token == "" {
		return Decision{Outcome: Unauthenticated, Message: "Unauthenticated: send a bearer token or a client certificate (a user with " + attrs.String() + ")"}
	}
	key := sha256.Sum256([]byte(cred.key() + "\x00" + fmt.Sprintf("%#v", attrs)))
	now := g.Clock.Now()
	g.mu.Lock()
	if d, ok := g.cache[key]; ok && now.Before(d.until) {
		g.mu.Unlock()
		return d
	}
	g.mu.Unlock()
	d := g.review(ctx, cred, attrs)
	if d.Outcome != Unavailable {
		ttl := DeniedTTL
		if d.Outcome == Allowed {
			ttl = AllowedTTL
		}
		d.until = now.Add(ttl)
		g.mu.Lock()
		if g.cache == nil || len(g.cache) >= maxEntries {
			g.cache = map[[32]byte]Decision{} // bounded: start over rather than grow
		}
		g.cache[key] = d
		g.mu.Unlock()
	}
	return d
}

func (g *Guard) review(ctx context.Context, cred Credential, attrs Attributes) Decision {
	var user authnv1.UserInfo
	if cred.User != nil {
		user = *cred.User
	} else {
		u, ok, err := g.Reviewer.Authenticate(ctx, cred.Token)
		if err != nil {
			return Decision{Outcome: Unavailable, Message: "cannot check the token with the apiserver (TokenReview): " + err.Error()}
		}
		if !ok {
			return Decision{Outcome: Unauthenticated, Message: "Unauthenticated: the apiserver does not accept this token"}
		}
		user = u
	}
	allowed, reason, err := g.Reviewer.Authorize(ctx, user, attrs)
	if err != nil {
		return Decision{Outcome: Unavailable, Message: "cannot authorize with the apiserver (SubjectAccessReview): " + err.Error()}
	}
	if !allowed {
		msg := fmt.Sprintf("Forbidden: user %q may not %s (grant %s)", user.Username, attrs, attrs.grant())
		if reason != "" {
			msg += ": " + reason
		}
		return Decision{Outcome: Forbidden, Message: msg}
	}
	return Decision{Outcome: Allowed}
}

// Wrap serves next only to callers RBAC allows the request's method on its
// path. No or an invalid token: 401; a user without the permission: 403
// naming the verb and URL; the apiserver unreachable: 503.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verb := strings.ToLower(r.Method)
		if verb == "head" {
			verb = "get"
		}
		token, _ := bearer(r.Header.Get("Authorization"))
		d := g.Decide(r.Context(), Credential{Token: token}, Attributes{Verb: verb, Path: r.URL.Path})
		switch d.Outcome {
		case Allowed:
			next.ServeHTTP(w, r)
		case Unauthenticated:
			w.Header().Set("WWW-Authenticate", `Bearer realm="rotor"`)
			http.Error(w, d.Message, http.StatusUnauthorized)
		case Forbidden:
			http.Error(w, d.Message, http.StatusForbidden)
		default:
			http.Error(w, d.Message, http.StatusServiceUnavailable)
		}
	})
}

func bearer(h string) (string, bool) {
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
func (a APIServer) Authorize(ctx context.Context, u authnv1.UserInfo, attrs Attributes) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	extra := map[string]authzv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	spec := authzv1.SubjectAccessReviewSpec{User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}
	if attrs.Path != "" {
		spec.NonResourceAttributes = &authzv1.NonResourceAttributes{Path: attrs.Path, Verb: attrs.Verb}
	} else {
		spec.ResourceAttributes = &authzv1.ResourceAttributes{Verb: attrs.Verb, Group: attrs.Group,
			Resource: attrs.Resource, Namespace: attrs.Namespace, Name: attrs.Name}
	}
	sar, err := a.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return sar.Status.Allowed, sar.Status.Reason, nil
}
