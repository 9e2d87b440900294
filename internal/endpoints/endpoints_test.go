package endpoints

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/internal/certfile"
	"github.com/rotor-dev/rotor/internal/kubeauth"
)

func TestReadyzFollowsReady(t *testing.T) {
	var synced atomic.Bool
	addr, err := Serve(t.Context(), "127.0.0.1:0", func() error {
		if !synced.Load() {
			return errors.New("shard not synced")
		}
		return nil
	}, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "shard not synced") {
		t.Errorf("/readyz before sync = %d %q, want 503 with the reason", code, body)
	}
	synced.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz after sync = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d", code)
	}
}

type allowReader struct{}

func (allowReader) Authenticate(_ context.Context, token string) (authnv1.UserInfo, bool, error) {
	return authnv1.UserInfo{Username: token}, token == "reader", nil
}

func (allowReader) Authorize(_ context.Context, _ authnv1.UserInfo, _ kubeauth.Attributes) (bool, string, error) {
	return true, "", nil
}

// TestPprofAndGuard: pprof is off unless asked for; with a guard and TLS,
// /metrics and /debug/pprof want a token, /healthz and /readyz do not.
func TestPprofAndGuard(t *testing.T) {
	ready := func() error { return nil }
	log := slog.New(slog.DiscardHandler)
	plain, err := Serve(t.Context(), "127.0.0.1:0", ready, log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get("http://" + plain.String() + "/debug/pprof/"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("pprof by default: %v %v, want 404", resp.Status, err)
	}
	tlsCfg, err := certfile.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	guarded, err := Serve(t.Context(), "127.0.0.1:0", ready, log, Options{Pprof: true, TLS: tlsCfg,
		Guard: &kubeauth.Guard{Reviewer: allowReader{}, Clock: clock.RealClock{}}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/healthz", "", 200}, {"/readyz", "", 200},
		{"/metrics", "", 401}, {"/debug/pprof/", "", 401},
		{"/metrics", "reader", 200}, {"/debug/pprof/", "reader", 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+guarded.String()+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s with token %q: %d, want %d", tc.path, tc.token, resp.StatusCode, tc.code)
		}
	}
	// Go's TLS server answers plain HTTP with 400, never the content.
	resp, err := http.Get("http://" + guarded.String() + "/metrics")
	if err != nil {
		t.Fatalf("plain HTTP to the TLS listener: %v; want a 400 answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("plain HTTP to the TLS listener: %s, want 400", resp.Status)
	}
}
