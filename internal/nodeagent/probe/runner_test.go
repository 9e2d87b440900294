package probe

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// TestRunnerFollowsTheClock steps a fake clock through a readiness probe:
// no check before the initial delay, one per period after it, and the
// verdict reported once when it flips.
func TestRunnerFollowsTheClock(t *testing.T) {
	start := time.Unix(1000, 0)
	clk := clocktesting.NewFakeClock(start)
	checks := make(chan struct{}, 10)
	var mu sync.Mutex
	var changes []Result
	r := &Runner{
		Clock: clk,
		State: NewState(Spec{InitialDelay: 3 * time.Second, Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1}, Failure, start),
		Check: func(context.Context) error {
			checks <- struct{}{}
			return nil
		},
		OnChange: func(res Result, _ error) {
			mu.Lock()
			changes = append(changes, res)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	waitTimer(t, clk)
	clk.Step(2 * time.Second)
	select {
	case <-checks:
		t.Fatal("checked before the initial delay")
	case <-time.After(20 * time.Millisecond):
	}
	clk.Step(time.Second)
	expectCheck(t, checks, "first check at the initial delay")
	waitTimer(t, clk)
	clk.Step(time.Second)
	expectCheck(t, checks, "second check one period later")
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 1 || changes[0] != Success {
		t.Fatalf("verdict changes %v, want [Success]", changes)
	}
}

func TestRunnerReportsTheError(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	got := make(chan error, 1)
	r := &Runner{
		Clock: clk, State: NewState(Spec{Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 1}, Success, clk.Now()),
		Check:    func(context.Context) error { return errors.New("connection refused") },
		OnChange: func(_ Result, err error) { got <- err },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	select {
	case err := <-got:
		if err == nil || err.Error() != "connection refused" {
			t.Fatalf("OnChange error = %v, want the check's", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no verdict change within 5s of a failing check with threshold 1")
	}
}

func waitTimer(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the runner did not wait on the clock within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func expectCheck(t *testing.T, checks chan struct{}, what string) {
	t.Helper()
	select {
	case <-checks:
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
	}
}
