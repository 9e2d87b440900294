package http

import (
	"context"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

type secrets map[string]map[string][]byte // namespace/name → data

func (s secrets) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	d, ok := s[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: d}, nil
}

func bearer(name, key string) v1alpha1.SecretHeader {
	return v1alpha1.SecretHeader{Name: "Authorization", Prefix: "Bearer ",
		SecretKeyRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
}

// TestSecretHeaders: a header's value comes from the namespace's Secret,
// read at each request (a rotation is used at once); the polls of an
// asynchronous call to the same origin send it, a status URL elsewhere
// does not get it; an endpoint echoing it in an error does not put it in
// the message; a missing Secret or key fails SecretNotFound without a call.
func TestSecretHeaders(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{} // path → Authorization headers received
	other := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		got["other"+r.URL.Path] = append(got["other"+r.URL.Path], r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, `{"state": "succeeded", "outputs": {"ok": true}}`)
	}))
	defer other.Close()
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], r.Header.Get("Authorization"))
		mu.Unlock()
		switch r.URL.Path {
		case "/sync":
			fmt.Fprint(w, `{"ok": true}`)
		case "/async":
			fmt.Fprintf(w, `{"statusURL": "http://%s/status"}`, r.Host)
		case "/async-elsewhere":
			fmt.Fprintf(w, `{"statusURL": "%s/status"}`, other.URL)
		case "/status":
			fmt.Fprint(w, `{"state": "succeeded", "outputs": {"done": true}}`)
		case "/echo":
			w.WriteHeader(nethttp.StatusUnauthorized)
			fmt.Fprintf(w, "token %s refused", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		}
	}))
	defer srv.Close()
	store := secrets{"team-a/api": {"token": []byte("t0k3n-1")}}
	p := New(Config{AllowedURLPrefixes: local, Secrets: store})
	call := func(path string, h ...v1alpha1.SecretHeader) (plugins.PhaseInfo, *plugins.TaskContext) {
		t.Helper()
		tc := taskCtx(srv.URL+path, nil)
		tc.ID.Attempt++ // a new idempotency key per call: no journal replay
		tc.ID.Node = path
		tc.Task.HTTP.SecretHeaders = h
		info, err := p.Handle(context.Background(), tc)
		if err != nil {
			t.Fatal(err)
		}
		return info, tc
	}
	if info, _ := call("/sync", bearer("api", "token")); info.Phase != plugins.PhaseSucceeded {
		t.Fatalf("sync call: %+v", info)
	}
	store["team-a/api"]["token"] = []byte("t0k3n-2") // rotated
	info, tc := call("/async", bearer("api", "token"))
	if info.Phase != plugins.PhaseRunning {
		t.Fatalf("async call: %+v", info)
	}
	tc.State = info.State
	if info, err := p.Handle(context.Background(), tc); err != nil || info.Phase != plugins.PhaseSucceeded {
		t.Fatalf("poll: %+v %v", info, err)
	}
	info, tc = call("/async-elsewhere", bearer("api", "token"))
	tc.State = info.State
	if info, err := p.Handle(context.Background(), tc); err != nil || info.Phase != plugins.PhaseSucceeded {
		t.Fatalf("poll elsewhere: %+v %v", info, err)
	}
	info, _ = call("/echo", bearer("api", "token"))
	if info.Phase != plugins.PhaseFailed || strings.Contains(info.Message, "t0k3n") || !strings.Contains(info.Message, "token [redacted] refused") {
		t.Fatalf("an echoed secret: %+v, want the value redacted from the message", info)
	}
	mu.Lock()
	want := map[string][]string{
		"/sync": {"Bearer t0k3n-1"}, "/async": {"Bearer t0k3n-2"}, "/status": {"Bearer t0k3n-2"},
		"/async-elsewhere": {"Bearer t0k3n-2"}, "other/status": {""}, "/echo": {"Bearer t0k3n-2"},
	}
	for path, w := range want {
		if strings.Join(got[path], ",") != strings.Join(w, ",") {
			t.Errorf("%s got Authorization %q, want %q", path, got[path], w)
		}
	}
	mu.Unlock()

	for _, tc := range []struct {
		name string
		p    *Plugin
		h    v1alpha1.SecretHeader
		msg  string
	}{
		{"no such secret", p, bearer("nope", "token"), `secret "nope" not found in namespace team-a`},
		{"no such key", p, bearer("api", "password"), `secret "api" in namespace team-a has no key "password"`},
		{"no reader", New(Config{AllowedURLPrefixes: local}), bearer("api", "token"), "this install reads no Secrets"},
	} {
		calls := func() int { mu.Lock(); defer mu.Unlock(); return len(got["/sync"]) }
		before := calls()
		c := taskCtx(srv.URL+"/sync", nil)
		c.ID.Node = tc.name
		c.Task.HTTP.SecretHeaders = []v1alpha1.SecretHeader{tc.h}
		info, err := tc.p.Handle(context.Background(), c)
		if err != nil || info.Phase != plugins.PhaseFailed || info.Reason != plugins.ReasonSecretNotFound || !strings.Contains(info.Message, tc.msg) {
			t.Errorf("%s: %+v %v, want SecretNotFound containing %q", tc.name, info, err, tc.msg)
		}
		if calls() != before {
			t.Errorf("%s: the endpoint was called", tc.name)
		}
	}
}
