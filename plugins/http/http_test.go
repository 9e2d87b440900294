package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/offload"
	"github.com/rotor-dev/rotor/plugins"
)

// local allows the test servers (httptest listens on 127.0.0.1, any port).
var local = mustPrefixes("http://127.0.0.1:")

func mustPrefixes(list string) []Prefix {
	ps, err := ParsePrefixes(list)
	if err != nil {
		panic(err)
	}
	return ps
}

func taskCtx(url string, inputs map[string]string) *plugins.TaskContext {
	in := map[string]json.RawMessage{}
	for k, v := range inputs {
		in[k] = json.RawMessage(v)
	}
	return &plugins.TaskContext{
		ID:     plugins.TaskID{Namespace: "team-a", WorkflowUID: "u", Node: "call", Attempt: 1},
		Task:   &v1alpha1.TaskTemplate{Type: "http", HTTP: &v1alpha1.HTTPTask{URL: url}},
		Inputs: in,
	}
}

func TestSyncCall(t *testing.T) {
	var gotKey, gotBody string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		gotKey = r.Header.Get("Idempotency-Key")
		b := make([]byte, 100)
		n, _ := r.Body.Read(b)
		gotBody = string(b[:n])
		fmt.Fprintf(w, `{"sum": 5, "path": %q}`, r.URL.Path)
	}))
	defer srv.Close()
	info, err := New(Config{AllowedURLPrefixes: local}).Handle(context.Background(), taskCtx(srv.URL+"/add/{{inputs.a}}", map[string]string{"a": "2", "b": "3"}))
	if err != nil || info.Phase != plugins.PhaseSucceeded {
		t.Fatalf("Handle = %+v, %v", info, err)
	}
	if string(info.Outputs) != `{"sum": 5, "path": "/add/2"}` || gotKey != "u/call/1" || gotBody != `{"a":2,"b":3}` {
		t.Fatalf("outputs %s, key %q, body %q", info.Outputs, gotKey, gotBody)
	}
}

// async is an endpoint that starts an asynchronous call at /start,
// answers running at /status until the doneAt'th poll (never, if 0) and
// counts its polls and cancels.
type async struct {
	srv            *httptest.Server
	polls, cancels atomic.Int32
}

func asyncServer(t *testing.T, doneAt int32) *async {
	a := &async{}
	mux := nethttp.NewServeMux()
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	mux.HandleFunc("/start", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		fmt.Fprintf(w, `{"statusURL": "%s/status", "cancelURL": "%s/cancel"}`, a.srv.URL, a.srv.URL)
	})
	mux.HandleFunc("/status", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		if n := a.polls.Add(1); doneAt == 0 || n < doneAt {
			fmt.Fprint(w, `{"state": "running"}`)
			return
		}
		fmt.Fprint(w, `{"state": "succeeded", "outputs": {"done": true}}`)
	})
	mux.HandleFunc("/cancel", func(nethttp.ResponseWriter, *nethttp.Request) { a.cancels.Add(1) })
	return a
}

func TestAsyncCallPolls(t *testing.T) {
	a := asyncServer(t, 3)
	srv, polls := a.srv, &a.polls
	p := New(Config{AllowedURLPrefixes: local})
	tc := taskCtx(srv.URL+"/start", nil)
	info, _ := p.Handle(context.Background(), tc)
	if info.Phase != plugins.PhaseRunning || info.State == "" || info.CheckAfter == 0 {
		t.Fatalf("start: %+v", info)
	}
	tc.State, tc.Launched = info.State, true
	for i := 0; i < 5 && info.Phase == plugins.PhaseRunning; i++ {
		info, _ = p.Handle(context.Background(), tc)
	}
	if info.Phase != plugins.PhaseSucceeded || string(info.Outputs) != `{"done": true}` || polls.Load() != 3 {
		t.Fatalf("after %d polls: %+v", polls.Load(), info)
	}
	if err := p.Abort(context.Background(), tc); err != nil || a.cancels.Load() != 1 {
		t.Fatalf("abort: %v, %d cancels; want 1", err, a.cancels.Load())
	}
}

func TestErrorsAndPolicy(t *testing.T) {
	var calls atomic.Int32
	mux := nethttp.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The same server under a name no prefix allows: what an allowed
	// endpoint could point or redirect to.
	foreign := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	mux.HandleFunc("/", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		calls.Add(1)
		switch r.URL.Path {
		case "/bad":
			w.WriteHeader(400)
		case "/down":
			w.WriteHeader(503)
		case "/redirect":
			nethttp.Redirect(w, r, foreign+"/ok", nethttp.StatusFound)
			return
		case "/async-elsewhere":
			fmt.Fprintf(w, `{"statusURL": %q}`, foreign+"/status")
			return
		case "/ok":
			fmt.Fprint(w, `{"ok": true}`)
			return
		}
		fmt.Fprint(w, "nope")
	})
	tenant := func(ns string) map[string]string {
		return map[string]map[string]string{"team-a": {AnnotationAllowedURLPrefixes: foreign + "/ok"}, "team-c": {AnnotationAllowedURLPrefixes: "ftp://x"}}[ns]
	}
	for _, tc := range []struct {
		name, url string
		cfg       Config
		ns        string
		want      plugins.Phase
		reason    string
		msg       string
		calls     int32
	}{
		{"4xx is the task's failure", srv.URL + "/bad", Config{AllowedURLPrefixes: local}, "team-a", plugins.PhaseFailed, "HTTPError", "answered 400: nope", 1},
		{"5xx is a system failure", srv.URL + "/down", Config{AllowedURLPrefixes: local}, "team-a", plugins.PhaseSystemFailed, "ServerError", "answered 503", 1},
		{"unreachable is a system failure", "http://127.0.0.1:1/x", Config{AllowedURLPrefixes: local}, "team-a", plugins.PhaseSystemFailed, "CallError", "connect", 0},
		{"nothing is allowed by default", srv.URL + "/ok", Config{}, "team-a", plugins.PhaseFailed, ReasonURLNotAllowed, "may call no URL", 0},
		{"outside the install's prefixes", srv.URL + "/ok", Config{AllowedURLPrefixes: mustPrefixes("https://api.internal/")}, "team-a", plugins.PhaseFailed, ReasonURLNotAllowed, "not under a URL prefix allowed in namespace team-a (https://api.internal/)", 0},
		{"not http", "file:///etc/passwd", Config{AllowedURLPrefixes: local}, "team-a", plugins.PhaseFailed, ReasonURLNotAllowed, "not an http(s) URL", 0},
		{"a user part is refused", "http://127.0.0.1:@" + strings.TrimPrefix(foreign, "http://") + "/ok", Config{AllowedURLPrefixes: local}, "team-a", plugins.PhaseFailed, ReasonURLNotAllowed, "user part", 0},
		{"a redirect outside is refused", srv.URL + "/redirect", Config{AllowedURLPrefixes: local}, "team-b", plugins.PhaseFailed, ReasonURLNotAllowed, "redirected: " + foreign + "/ok is not under", 1},
		{"a redirect the tenant allows is followed", srv.URL + "/redirect", Config{AllowedURLPrefixes: local, NamespaceAnnotations: tenant}, "team-a", plugins.PhaseSucceeded, "", "", 2},
		{"a statusURL outside is refused", srv.URL + "/async-elsewhere", Config{AllowedURLPrefixes: local}, "team-a", plugins.PhaseFailed, ReasonURLNotAllowed, "statusURL: " + foreign + "/status is not under", 1},
		{"the tenant's prefix", foreign + "/ok", Config{NamespaceAnnotations: tenant}, "team-a", plugins.PhaseSucceeded, "", "", 1},
		{"another tenant's prefix is not this one's", foreign + "/ok", Config{NamespaceAnnotations: tenant}, "team-b", plugins.PhaseFailed, ReasonURLNotAllowed, "may call no URL", 0},
		{"an unreadable annotation is named", foreign + "/ok", Config{NamespaceAnnotations: tenant}, "team-c", plugins.PhaseFailed, ReasonURLNotAllowed, "annotation is unreadable", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			task := taskCtx(tc.url, nil)
			task.ID.Namespace = tc.ns
			info, err := New(tc.cfg).Handle(context.Background(), task)
			if err != nil || info.Phase != tc.want || info.Reason != tc.reason || !strings.Contains(info.Message, tc.msg) {
				t.Fatalf("Handle = %s %s %q, %v; want %s %s containing %q", info.Phase, info.Reason, info.Message, err, tc.want, tc.reason, tc.msg)
			}
			if got := calls.Load(); got != tc.calls {
				t.Fatalf("the server got %d requests, want %d", got, tc.calls)
			}
		})
	}
}

// A policy narrowed while a call runs stops its polls and its cancel.
func TestNarrowedPolicyStopsPollsAndCancel(t *testing.T) {
	a := asyncServer(t, 0)
	srv, polls, cancels := a.srv, &a.polls, &a.cancels
	allowed := map[string]string{AnnotationAllowedURLPrefixes: srv.URL + "/"}
	p := New(Config{NamespaceAnnotations: func(string) map[string]string { return allowed }})
	tc := taskCtx(srv.URL+"/start", nil)
	info, _ := p.Handle(context.Background(), tc)
	tc.State, tc.Launched = info.State, true
	if info, _ = p.Handle(context.Background(), tc); info.Phase != plugins.PhaseRunning || polls.Load() != 1 {
		t.Fatalf("first poll: %+v, %d polls", info, polls.Load())
	}
	allowed = map[string]string{AnnotationAllowedURLPrefixes: srv.URL + "/start"}
	if info, _ = p.Handle(context.Background(), tc); info.Phase != plugins.PhaseFailed || info.Reason != ReasonURLNotAllowed || polls.Load() != 1 {
		t.Fatalf("poll after narrowing: %+v, %d polls; want URLNotAllowed and no second poll", info, polls.Load())
	}
	if err := p.Abort(context.Background(), tc); err != nil || cancels.Load() != 0 {
		t.Fatalf("abort after narrowing: %v, %d cancels; want nil and none", err, cancels.Load())
	}
}

func TestPrefixCovers(t *testing.T) {
	for _, tc := range []struct {
		prefix, url string
		want        bool
	}{
		{"http://127.0.0.1:", "http://127.0.0.1:8080/x", true},
		{"http://127.0.0.1:", "http://127.0.0.1/x", true},
		{"http://127.0.0.1:", "https://127.0.0.1:8443/x", false},
		{"http://127.0.0.1:", "http://127.0.0.10:80/x", false},
		{"https://api.internal", "https://api.internal/v1", true},
		{"https://api.internal", "https://API.internal:443/v1", true},
		{"https://api.internal", "https://api.internal:8443/v1", false},
		{"https://api.internal", "https://api.internal.evil.example/", false},
		{"https://api.internal/v1", "https://api.internal/v1", true},
		{"https://api.internal/v1", "https://api.internal/v1/jobs?x=1", true},
		{"https://api.internal/v1", "https://api.internal/v10", false},
		{"https://api.internal/v1/", "https://api.internal/v1", false},
		{"https://api.internal/v1/", "https://api.internal/v1/x", true},
		{"https://api.internal:8443/", "https://api.internal:8443/x", true},
		{"https://api.internal:8443/", "https://api.internal/x", false},
	} {
		p, err := parsePrefix(tc.prefix)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.prefix, err)
		}
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.url, err)
		}
		if got := p.covers(u); got != tc.want {
			t.Errorf("%s covers %s = %v, want %v", tc.prefix, tc.url, got, tc.want)
		}
	}
	for _, bad := range []string{"ftp://x/", "https://", "https://u:p@host/", "https://host/?q=1", "host/path"} {
		if _, err := ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) = nil error, want one", bad)
		}
	}
	pol := policy{install: mustPrefixes("https://api.internal/v1/")}
	for _, u := range []string{"https://api.internal/v1/../admin", "https://api.internal/v1/%2e%2e/admin", "https://api.internal/v1/./x"} {
		if err := pol.check("team-a", u); err == nil {
			t.Errorf("check(%q) = nil, want a dot-segment refusal", u)
		}
	}
}

// TestNoCallAfterTheFenceCloses: a replica whose lease lapsed during the
// journal lookup does not call the endpoint (the next owner will) and
// returns the fence's error; with the fence open it calls once (the
// control).
func TestNoCallAfterTheFenceCloses(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	lapsed := fmt.Errorf("membership lease deadline passed")
	for _, closed := range []bool{false, true} {
		calls.Store(0)
		tc := taskCtx(srv.URL+"/do", nil)
		tc.Fence = func() error {
			if closed {
				return lapsed
			}
			return nil
		}
		info, err := New(Config{AllowedURLPrefixes: local}).Handle(context.Background(), tc)
		switch n := calls.Load(); {
		case !closed && (err != nil || n != 1 || info.Phase != plugins.PhaseSucceeded):
			t.Fatalf("fence open: %d calls, %+v, %v; want one call that succeeded", n, info, err)
		case closed && n != 0:
			t.Fatalf("fence closed: %d calls, want none", n)
		case closed && err != lapsed:
			t.Fatalf("fence closed: error %v, want the fence's", err)
		}
	}
}

// TestOffloadedInputsAreSentAsValues: an input that arrives offloaded is
// read back (Materialize) for the body and the URL, so the endpoint gets
// the value, never the reference; a store that does not answer is the
// round's error (retried), not the task's failure.
func TestOffloadedInputsAreSentAsValues(t *testing.T) {
	var gotBody, gotPath string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody, gotPath = string(b), r.URL.Path
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	refRows := `{"$ref": {"uri": "s3://b/team-a/wf/u/a/0/outputs/rows.json", "size": 7, "sha256": "` + strings.Repeat("ab", 32) + `"}}`
	tc := taskCtx(srv.URL+"/n/{{inputs.n}}", map[string]string{"rows": refRows, "n": "1"})
	var reads int
	tc.Materialize = func(_ context.Context, raw json.RawMessage) (json.RawMessage, error) {
		if string(raw) == refRows {
			reads++
			return json.RawMessage(`[1,2,3]`), nil
		}
		return raw, nil
	}
	info, err := New(Config{AllowedURLPrefixes: local}).Handle(context.Background(), tc)
	if err != nil || info.Phase != plugins.PhaseSucceeded {
		t.Fatalf("Handle = %+v, %v", info, err)
	}
	if gotBody != `{"n":1,"rows":[1,2,3]}` || gotPath != "/n/1" || reads != 1 {
		t.Fatalf("body %q, path %q, %d reads; want the value read once", gotBody, gotPath, reads)
	}
	down := taskCtx(srv.URL, map[string]string{"rows": refRows})
	down.Materialize = func(context.Context, json.RawMessage) (json.RawMessage, error) {
		return nil, &offload.Unavailable{Err: errors.New("dial tcp: connection refused")}
	}
	gotBody = ""
	if info, err := New(Config{AllowedURLPrefixes: local}).Handle(context.Background(), down); err == nil || info.Phase == plugins.PhaseFailed || gotBody != "" {
		t.Fatalf("store down: %+v, %v, body %q; want a round error and no call", info, err, gotBody)
	}
}
