package propeller

import (
	"io"
	"log/slog"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// TestUnshardedReplicaWaitsForConnectingTargets: an unsharded replica's
// first round waits until no target is still connecting, or for Max at
// most; and never before its Workflow cache has synced.
func TestUnshardedReplicaWaitsForConnectingTargets(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	connecting := []string{"east"}
	wfSynced := false
	e := &everything{synced: func() bool { return wfSynced }, start: clk.Now(),
		wait: TargetWait{Connecting: func() []string { return connecting }, Max: time.Minute, Clock: clk}}
	e.wait.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if e.HasSynced() {
		t.Fatal("synced before the Workflow cache")
	}
	wfSynced = true
	if e.HasSynced() {
		t.Fatal("synced while east is still connecting")
	}
	clk.Step(59 * time.Second)
	if e.HasSynced() {
		t.Fatal("synced after 59 s of a 1-minute wait")
	}
	connecting = nil
	if !e.HasSynced() {
		t.Fatal("not synced once no target is connecting")
	}
	connecting = []string{"east"}
	clk.Step(time.Second)
	if !e.HasSynced() {
		t.Fatal("still waiting for east after the 1-minute bound")
	}
}
