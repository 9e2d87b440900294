// Package lease tells a replica until when it may act on its etcd session
// lease, from its own clock, without asking etcd.
//
// etcd expires a lease TTL after the last keepalive it received. The
// replica cannot know when that was, but it knows when it sent the
// keepalive that etcd answered: the server received it later than that, so
// sentAt + TTL is never after the server's expiry. Subtracting a margin for
// clock drift, the replica stops acting before etcd could hand its
// partitions to someone else — even if it was frozen (SIGSTOP) in
// between, because on waking its clock has moved past the deadline.
package lease

import (
	"sync"
	"time"
)

// Validity tracks the deadline. Safe for concurrent use.
type Validity struct {
	margin time.Duration

	mu    sync.Mutex
	until time.Time
	lost  bool
}

// NewValidity returns a validity that is not valid until the first renewal.
// margin absorbs clock rate differences between replica and etcd.
func NewValidity(margin time.Duration) *Validity { return &Validity{margin: margin} }

// Renewed records that a keepalive sent at sentAt was granted ttl.
// Deadlines only move forward.
func (v *Validity) Renewed(sentAt time.Time, ttl time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.lost {
		return
	}
	if d := sentAt.Add(ttl - v.margin); d.After(v.until) {
		v.until = d
	}
}

// Lost ends validity for good: the lease is gone, a new session is needed.
func (v *Validity) Lost() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lost = true
	v.until = time.Time{}
}

// Valid reports whether the replica may act at now.
func (v *Validity) Valid(now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.lost && now.Before(v.until)
}

// Remaining is how long the replica may still act after now (≤ 0: not).
func (v *Validity) Remaining(now time.Time) time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.lost {
		return 0
	}
	return v.until.Sub(now)
}
