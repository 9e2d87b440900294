package endpoints

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReadyzFollowsReady(t *testing.T) {
	var synced atomic.Bool
	addr, err := Serve(t.Context(), "127.0.0.1:0", func() error {
		if !synced.Load() {
			return errors.New("shard not synced")
		}
		return nil
	}, slog.New(slog.DiscardHandler))
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
