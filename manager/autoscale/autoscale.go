// Package autoscale turns the load the replicas report into a desired
// replica count. Pure: the caller passes samples and the time.
//
// Each sample recommends ceil(load / target) replicas, clamped to
// [Min, Max]. The desired count is the highest recommendation within the
// stabilization window: scaling up follows load at once, scaling down
// waits until the load has stayed low for the whole window, so a dip does
// not shuffle partitions twice.
package autoscale

import (
	"math"
	"time"
)

// Config bounds the signal.
type Config struct {
	// TargetPerReplica is the active workflows one replica should carry.
	TargetPerReplica int
	Min, Max         int
	// Window is the scale-down stabilization window (default 5m).
	Window time.Duration
}

// Sample is the total load seen at one time.
type Sample struct {
	At time.Time
	// Workflows is the number of active (not finished) workflows.
	Workflows int
}

// Desired returns the replica count for now, and the samples still inside
// the window (to keep for the next call).
func Desired(cfg Config, samples []Sample, now time.Time) (int, []Sample) {
	if cfg.Window == 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.Min < 1 {
		cfg.Min = 1
	}
	if cfg.Max < cfg.Min {
		cfg.Max = cfg.Min
	}
	keep := samples[:0:0]
	best := cfg.Min
	for _, s := range samples {
		if now.Sub(s.At) > cfg.Window {
			continue
		}
		keep = append(keep, s)
		if r := recommend(cfg, s.Workflows); r > best {
			best = r
		}
	}
	return best, keep
}

func recommend(cfg Config, load int) int {
	if cfg.TargetPerReplica <= 0 {
		return cfg.Min
	}
	n := int(math.Ceil(float64(load) / float64(cfg.TargetPerReplica)))
	return max(cfg.Min, min(cfg.Max, n))
}
