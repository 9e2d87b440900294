package http

import (
	"context"
	"errors"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rotor-dev/rotor/plugins"
)

// counting serves /add, answering {"n": K} where K counts the calls with
// the request's key, and /start, which starts an asynchronous call.
func counting(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	mux := nethttp.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/add", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		fmt.Fprintf(w, `{"n": %d}`, calls.Add(1))
	})
	mux.HandleFunc("/start", func(w nethttp.ResponseWriter, _ *nethttp.Request) {
		calls.Add(1)
		fmt.Fprintf(w, `{"statusURL": "%s/status"}`, srv.URL)
	})
	return srv, &calls
}

func TestRedoneRoundReplaysTheAnswer(t *testing.T) {
	srv, calls := counting(t)
	p := New(Config{AllowedURLPrefixes: local})
	before := testutil.ToFloat64(replayed)
	first, err := p.Handle(context.Background(), taskCtx(srv.URL+"/add", nil))
	if err != nil || first.Phase != plugins.PhaseSucceeded || string(first.Outputs) != `{"n": 1}` {
		t.Fatalf("first round: %+v, %v", first, err)
	}
	// The round's status write was lost: the next round sees the attempt
	// as it was before, with no answer and nothing launched.
	again, err := p.Handle(context.Background(), taskCtx(srv.URL+"/add", nil))
	if err != nil || again.Phase != plugins.PhaseSucceeded || string(again.Outputs) != `{"n": 1}` || again.Resource != "http" {
		t.Fatalf("redone round: %+v, %v; want the first answer replayed", again, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("the endpoint was called %d times for one key, want 1", calls.Load())
	}
	if got := testutil.ToFloat64(replayed) - before; got != 1 {
		t.Fatalf("rotor_http_calls_replayed_total grew by %v, want 1", got)
	}
	// The next attempt has its own key: it calls.
	next := taskCtx(srv.URL+"/add", nil)
	next.ID.Attempt = 2
	if info, _ := p.Handle(context.Background(), next); string(info.Outputs) != `{"n": 2}` || calls.Load() != 2 {
		t.Fatalf("attempt 2: %+v after %d calls; want a call of its own", info, calls.Load())
	}
}

func TestRedoneAsyncStartReplaysItsState(t *testing.T) {
	srv, calls := counting(t)
	p := New(Config{AllowedURLPrefixes: local})
	first, _ := p.Handle(context.Background(), taskCtx(srv.URL+"/start", nil))
	again, _ := p.Handle(context.Background(), taskCtx(srv.URL+"/start", nil))
	if first.Phase != plugins.PhaseRunning || first.State == "" || again.State != first.State ||
		again.CheckAfter != first.CheckAfter || again.Resource != "http" {
		t.Fatalf("first %+v, redone %+v: want the start replayed with its polling state", first, again)
	}
	if calls.Load() != 1 {
		t.Fatalf("the call was started %d times, want 1", calls.Load())
	}
}

func TestCancelledRoundLeavesTheKeyUnanswered(t *testing.T) {
	srv, calls := counting(t)
	p := New(Config{AllowedURLPrefixes: local})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if info, _ := p.Handle(ctx, taskCtx(srv.URL+"/add", nil)); info.Phase != plugins.PhaseSystemFailed {
		t.Fatalf("cancelled round: %+v, want a system failure", info)
	}
	info, _ := p.Handle(context.Background(), taskCtx(srv.URL+"/add", nil))
	if info.Phase != plugins.PhaseSucceeded || calls.Load() != 1 {
		t.Fatalf("after a cancelled round: %+v with %d calls; want the call made, not the cancellation replayed", info, calls.Load())
	}
}

// broken is a shared journal whose reads or writes fail, as etcd's do
// while it is away.
type broken struct {
	lookupDown       bool
	lookups, records int
}

func (b *broken) Lookup(context.Context, string) (Answer, bool, error) {
	b.lookups++
	if b.lookupDown {
		return Answer{}, false, errors.New("etcd: connection refused")
	}
	return Answer{}, false, nil
}

func (b *broken) Record(context.Context, string, Answer) error {
	b.records++
	return errors.New("etcd: connection refused")
}

// TestUnreadableSharedJournalDefersTheCall: with the shared journal
// unreadable, nothing is called (the round is retried); once it reads
// again the call is made, and a write that fails still leaves the answer
// in the process's journal for a redone round.
func TestUnreadableSharedJournalDefersTheCall(t *testing.T) {
	srv, calls := counting(t)
	shared := &broken{lookupDown: true}
	p := New(Config{AllowedURLPrefixes: local, Journal: Layered{Local: NewMemoryJournal(clocktesting.NewFakeClock(time.Now()), time.Minute, 10), Shared: shared}})
	lookups, records := testutil.ToFloat64(journalErrors.WithLabelValues("lookup")), testutil.ToFloat64(journalErrors.WithLabelValues("record"))
	if _, err := p.Handle(context.Background(), taskCtx(srv.URL+"/add", nil)); err == nil || !strings.Contains(err.Error(), "not made") || calls.Load() != 0 {
		t.Fatalf("with the journal unreadable: err %v after %d calls; want an error saying the call was not made, and none", err, calls.Load())
	}
	shared.lookupDown = false
	for i := 0; i < 2; i++ {
		if info, err := p.Handle(context.Background(), taskCtx(srv.URL+"/add", nil)); err != nil || string(info.Outputs) != `{"n": 1}` {
			t.Fatalf("round %d: %+v, %v", i, info, err)
		}
	}
	if calls.Load() != 1 || shared.lookups != 2 || shared.records != 1 {
		t.Fatalf("%d calls, %d shared lookups, %d shared records; want 1, 2, 1 (the redo answered locally)", calls.Load(), shared.lookups, shared.records)
	}
	if testutil.ToFloat64(journalErrors.WithLabelValues("lookup"))-lookups != 1 || testutil.ToFloat64(journalErrors.WithLabelValues("record"))-records != 1 {
		t.Fatal("each failed shared-journal op must count in rotor_http_journal_errors_total")
	}
}

func TestMemoryJournalExpiresAndIsBounded(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	j := NewMemoryJournal(clk, time.Minute, 3)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_ = j.Record(ctx, fmt.Sprint("k", i), Answer{Phase: plugins.PhaseSucceeded, Reason: fmt.Sprint(i)})
		clk.Step(10 * time.Second)
	}
	if a, ok, _ := j.Lookup(ctx, "k0"); !ok || a.Reason != "0" {
		t.Fatalf("k0 = %+v %v, want it held", a, ok)
	}
	_ = j.Record(ctx, "k3", Answer{})
	if _, ok, _ := j.Lookup(ctx, "k0"); ok || j.Len() != 3 {
		t.Fatalf("after a 4th record: k0 held %v, %d held; want the oldest dropped, 3 held", ok, j.Len())
	}
	clk.Step(45 * time.Second) // k1 is 65 s old, k2 55 s
	if _, ok, _ := j.Lookup(ctx, "k1"); ok {
		t.Fatal("k1 outlived its TTL")
	}
	if _, ok, _ := j.Lookup(ctx, "k2"); !ok {
		t.Fatal("k2 is within its TTL and must be held")
	}
	_ = j.Record(ctx, "k4", Answer{})
	if j.Len() != 3 { // k1 expired and went; k2, k3, k4 remain
		t.Fatalf("%d held after expiry, want 3", j.Len())
	}
}
