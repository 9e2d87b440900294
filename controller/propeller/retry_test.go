package propeller

import (
	"fmt"
	"testing"
	"time"
)

// TestRetryLimiter: one workflow's retries back off from 5 ms to at most
// 30 s; a burst of 500 workflows failing at once (a target going away)
// are all retried at once, where client-go's default bucket (10/s, burst
// 100) would make the last wait 40 s.
func TestRetryLimiter(t *testing.T) {
	l := retryLimiter()
	var last time.Duration
	for i := 0; i < 30; i++ {
		last = l.When("ns/wf")
		if i == 0 && last != 5*time.Millisecond {
			t.Fatalf("first retry after %s, want 5ms", last)
		}
	}
	if last != 30*time.Second {
		t.Fatalf("30th retry after %s, want the 30s cap", last)
	}
	l = retryLimiter()
	var most time.Duration
	for i := 0; i < 500; i++ {
		most = max(most, l.When(fmt.Sprintf("ns/wf-%d", i)))
	}
	if most > 5*time.Millisecond {
		t.Fatalf("a burst of 500 failing workflows: the slowest waits %s, want 5ms", most)
	}
}
