package manager

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rotor-dev/rotor/shardproto"
)

// TestRecordMovesTimesThePause: the handoff pause is the time from the
// map that asked the owner to release to the map that moved the
// partition, on the manager's clock; each kind of move is counted.
func TestRecordMovesTimesThePause(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	m := New(nil, Config{Name: "m", Clock: clk})
	graceful := moves(t, "graceful")
	takeover := moves(t, "takeover")
	assign := moves(t, "assign")
	count, sum := pauseHistogram(t)

	m0 := shardproto.Map{{}, {Owner: "a", Epoch: 1}}
	m1 := shardproto.Map{{Owner: "a", Epoch: 1}, {Owner: "a", Epoch: 1, Next: "b", Asked: 2}}
	if moved := m.recordMoves(m0, m1); moved != 1 {
		t.Fatalf("assigning p0: %d moved, want 1", moved)
	}
	clk.Step(750 * time.Millisecond)
	m2 := shardproto.Map{{Owner: "c", Epoch: 2}, {Owner: "b", Epoch: 2}} // p0: a's lease gone; p1: released
	if moved := m.recordMoves(m1, m2); moved != 2 {
		t.Fatalf("second map: %d moved, want 2", moved)
	}
	if d := moves(t, "assign") - assign; d != 1 {
		t.Errorf("assign moves %v, want 1", d)
	}
	if d := moves(t, "graceful") - graceful; d != 1 {
		t.Errorf("graceful moves %v, want 1", d)
	}
	if d := moves(t, "takeover") - takeover; d != 1 {
		t.Errorf("takeovers %v, want 1", d)
	}
	c2, s2 := pauseHistogram(t)
	if c2-count != 1 || s2-sum != 0.75 {
		t.Errorf("pause histogram gained %d observations summing %vs, want one of 0.75s", c2-count, s2-sum)
	}
}

func pauseHistogram(t *testing.T) (uint64, float64) {
	t.Helper()
	var out dto.Metric
	if err := handoffPause.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount(), out.GetHistogram().GetSampleSum()
}

func moves(t *testing.T, kind string) float64 {
	t.Helper()
	var out dto.Metric
	if err := handoffs.WithLabelValues(kind).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

// TestDrainReturnsOnAClosedWatch: swallowing queued events stops at an
// empty channel, and at a closed one (it spun forever there).
func TestDrainReturnsOnAClosedWatch(t *testing.T) {
	ch := make(chan clientv3.WatchResponse, 3)
	ch <- clientv3.WatchResponse{}
	ch <- clientv3.WatchResponse{}
	drain(ch)
	if len(ch) != 0 {
		t.Fatalf("%d events left", len(ch))
	}
	close(ch)
	done := make(chan struct{})
	go func() { drain(ch); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("drain still running 5 s after its channel closed")
	}
}
