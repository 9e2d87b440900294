package http

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

func taskCtx(url string, inputs map[string]string) *plugins.TaskContext {
	in := map[string]json.RawMessage{}
	for k, v := range inputs {
		in[k] = json.RawMessage(v)
	}
	return &plugins.TaskContext{
		ID:     plugins.TaskID{WorkflowUID: "u", Node: "call", Attempt: 1},
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
	info, err := New(Config{}).Handle(context.Background(), taskCtx(srv.URL+"/add/{{inputs.a}}", map[string]string{"a": "2", "b": "3"}))
	if err != nil || info.Phase != plugins.PhaseSucceeded {
		t.Fatalf("Handle = %+v, %v", info, err)
	}
	if string(info.Outputs) != `{"sum": 5, "path": "/add/2"}` || gotKey != "u/call/1" || gotBody != `{"a":2,"b":3}` {
		t.Fatalf("outputs %s, key %q, body %q", info.Outputs, gotKey, gotBody)
	}
}

func TestAsyncCallPolls(t *testing.T) {
	var polls atomic.Int32
	mux := nethttp.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("/start", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		fmt.Fprintf(w, `{"statusURL": "%s/status", "cancelURL": "%s/cancel"}`, srv.URL, srv.URL)
	})
	mux.HandleFunc("/status", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		if polls.Add(1) < 3 {
			fmt.Fprint(w, `{"state": "running"}`)
			return
		}
		fmt.Fprint(w, `{"state": "succeeded", "outputs": {"done": true}}`)
	})
	var cancelled atomic.Bool
	mux.HandleFunc("/cancel", func(nethttp.ResponseWriter, *nethttp.Request) { cancelled.Store(true) })
	p := New(Config{})
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
	if err := p.Abort(context.Background(), tc); err != nil || !cancelled.Load() {
		t.Fatalf("abort: %v, cancelled %v", err, cancelled.Load())
	}
}

func TestErrorsAndPolicy(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		code := map[string]int{"/bad": 400, "/down": 503}[r.URL.Path]
		w.WriteHeader(code)
		fmt.Fprint(w, "nope")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, url string
		cfg       Config
		want      plugins.Phase
		msg       string
	}{
		{"4xx is the task's failure", srv.URL + "/bad", Config{}, plugins.PhaseFailed, "answered 400: nope"},
		{"5xx is a system failure", srv.URL + "/down", Config{}, plugins.PhaseSystemFailed, "answered 503"},
		{"unreachable is a system failure", "http://127.0.0.1:1/x", Config{}, plugins.PhaseSystemFailed, "connect"},
		{"not allowed", srv.URL + "/bad", Config{AllowedURLPrefixes: []string{"https://api.internal/"}}, plugins.PhaseFailed, "not under an allowed URL prefix"},
		{"not http", "file:///etc/passwd", Config{}, plugins.PhaseFailed, "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := New(tc.cfg).Handle(context.Background(), taskCtx(tc.url, nil))
			if err != nil || info.Phase != tc.want || !strings.Contains(info.Message, tc.msg) {
				t.Fatalf("Handle = %s %q, %v; want %s containing %q", info.Phase, info.Message, err, tc.want, tc.msg)
			}
		})
	}
}
