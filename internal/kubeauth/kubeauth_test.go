package kubeauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeReviewer knows two tokens; reader may get /metrics.
type fakeReviewer struct {
	authns, authzs int
	down           bool
	last           Attributes
}

func (f *fakeReviewer) Authenticate(_ context.Context, token string) (authnv1.UserInfo, bool, error) {
	f.authns++
	if f.down {
		return authnv1.UserInfo{}, false, errors.New("connection refused")
	}
	u, ok := map[string]string{"t-reader": "reader", "t-other": "other", "t-operator": "operator"}[token]
	return authnv1.UserInfo{Username: u}, ok, nil
}

func (f *fakeReviewer) Authorize(_ context.Context, u authnv1.UserInfo, a Attributes) (bool, string, error) {
	f.authzs++
	f.last = a
	switch u.Username {
	case "reader":
		return a == Attributes{Verb: "get", Path: "/metrics"}, "", nil
	case "operator": // may drain, and list one tenant's cache
		return a == Attributes{Verb: "drain", Group: "rotor.dev", Resource: "shards"} ||
			a == Attributes{Verb: "list", Group: "rotor.dev", Resource: "cacheentries", Namespace: "team-a"}, "", nil
	}
	return false, "", nil
}

func TestGuard(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(0, 0))
	rev := &fakeReviewer{}
	g := &Guard{Reviewer: rev, Clock: clk}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("metrics")) }))
	get := func(path, auth string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct {
		name, path, auth string
		code             int
		body             string
	}{
		{"no token", "/metrics", "", 401, "send a bearer token"},
		{"not bearer", "/metrics", "Basic dTpw", 401, "send a bearer token"},
		{"unknown token", "/metrics", "Bearer nope", 401, "does not accept this token"},
		{"no permission", "/metrics", "Bearer t-other", 403, `user "other" may not get /metrics (grant a ClusterRole with nonResourceURLs [/metrics], verbs [get])`},
		{"another path", "/debug/pprof/", "Bearer t-reader", 403, `may not get /debug/pprof/`},
		{"allowed", "/metrics", "Bearer t-reader", 200, "metrics"},
	} {
		if code, body := get(tc.path, tc.auth); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d containing %q", tc.name, code, body, tc.code, tc.body)
		}
	}
	if rev.authns != 4 || rev.authzs != 3 {
		t.Fatalf("%d TokenReviews and %d SubjectAccessReviews, want 4 and 3 (none for a request without a token)", rev.authns, rev.authzs)
	}
	// Cached: within the TTLs nothing more is asked.
	get("/metrics", "Bearer t-reader")
	get("/metrics", "Bearer t-other")
	if rev.authns != 4 {
		t.Fatalf("%d TokenReviews after repeats within the TTL, want still 4", rev.authns)
	}
	clk.SetTime(clk.Now().Add(DeniedTTL + time.Second))
	get("/metrics", "Bearer t-reader") // allowed: still cached
	get("/metrics", "Bearer t-other")  // denied: asked again
	if rev.authns != 5 {
		t.Fatalf("%d TokenReviews after the denied TTL, want 5 (the denial asked again, the allowance not)", rev.authns)
	}
	clk.SetTime(clk.Now().Add(AllowedTTL))
	rev.down = true
	if code, body := get("/metrics", "Bearer t-reader"); code != 503 || !strings.Contains(body, "TokenReview") {
		t.Fatalf("apiserver down: %d %q, want 503 naming the TokenReview", code, body)
	}
	rev.down = false
	if code, _ := get("/metrics", "Bearer t-reader"); code != 200 || rev.authns != 7 {
		t.Fatalf("after the apiserver came back: %d with %d TokenReviews, want 200 and 7 (the failure was not cached)", code, rev.authns)
	}
}
