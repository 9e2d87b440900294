package probe

import (
	"context"

	"k8s.io/utils/clock"
)

// Check performs one probe; nil is a success.
type Check func(ctx context.Context) error

// Runner checks on State's schedule until its context ends. It calls
// OnChange, from its own goroutine, each time the verdict changes, with
// the error of the check that changed it (nil for a success).
type Runner struct {
	Clock    clock.Clock
	State    *State
	Check    Check
	OnChange func(Result, error)
}

// Run blocks until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	for {
		wait := r.State.Due().Sub(r.Clock.Now())
		if wait > 0 {
			t := r.Clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
		}
		if ctx.Err() != nil {
			return
		}
		start := r.Clock.Now()
		cctx, cancel := context.WithTimeout(ctx, r.State.Spec().Timeout)
		err := r.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return // the container is stopping: its last check says nothing
		}
		if r.State.Observe(start, err == nil) && r.OnChange != nil {
			r.OnChange(r.State.Result(), err)
		}
	}
}
