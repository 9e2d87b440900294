// Package backoff is the kubelet's restart and image-pull back-off as a
// pure value: no timers, the caller sleeps.
package backoff

import "time"

// Policy is a back-off: the first retry after a failure is immediate, the
// next waits Initial, then each wait doubles up to Max. A container that
// ran at least ResetAfter before failing starts over, so a crash every few
// hours is not punished like a crash loop. The zero Policy is the
// kubelet's: 10s doubling to 5m, reset after 10m.
type Policy struct {
	Initial, Max, ResetAfter time.Duration
}

// Kubelet is the kubelet's container restart back-off.
var Kubelet = Policy{Initial: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute}

// WithDefaults fills zero fields from Kubelet.
func (p Policy) WithDefaults() Policy {
	if p.Initial <= 0 {
		p.Initial = Kubelet.Initial
	}
	if p.Max <= 0 {
		p.Max = Kubelet.Max
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.ResetAfter <= 0 {
		p.ResetAfter = Kubelet.ResetAfter
	}
	return p
}

// Backoff is the back-off state of one container (or one image pull). Not
// safe for concurrent use; the zero value is ready, with Policy's defaults.
type Backoff struct {
	Policy Policy
	// next is the wait before the retry after the next failure; 0 until
	// the first failure.
	next time.Duration
}

// Failed records a failure after the thing ran for ranFor and returns how
// long to wait before retrying.
func (b *Backoff) Failed(ranFor time.Duration) time.Duration {
	p := b.Policy.WithDefaults()
	if b.next == 0 || ranFor >= p.ResetAfter {
		b.next = p.Initial
		return 0
	}
	wait := b.next
	b.next = min(2*b.next, p.Max)
	return wait
}

// Reset forgets past failures (a pull that succeeded).
func (b *Backoff) Reset() { b.next = 0 }
