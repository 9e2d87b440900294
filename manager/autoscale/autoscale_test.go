package autoscale

import (
	"testing"
	"time"
)

func TestDesired(t *testing.T) {
	cfg := Config{TargetPerReplica: 100, Min: 2, Max: 10, Window: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []Sample
	step := func(at time.Duration, load, want int) {
		t.Helper()
		samples = append(samples, Sample{At: t0.Add(at), Workflows: load})
		var got int
		got, samples = Desired(cfg, samples, t0.Add(at))
		if got != want {
			t.Fatalf("at %s with load %d: desired %d, want %d", at, load, got, want)
		}
	}
	step(0, 0, 2)                  // the floor
	step(10*time.Second, 450, 5)   // up at once
	step(20*time.Second, 2000, 10) // capped
	step(30*time.Second, 150, 10)  // down waits for the window
	// 85 s: the 2,000 sample (20 s) left the window; 150 → 2 replicas.
	step(85*time.Second, 150, 2)
	if len(samples) != 2 {
		t.Fatalf("%d samples kept, want the 2 inside the window", len(samples))
	}
}
