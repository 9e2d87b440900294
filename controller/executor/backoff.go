package executor

import (
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// Backoff is the wait before the n-th retry (n ≥ 1): initial·factor^(n−1),
// capped at max (default: no cap beyond one hour). No backoff: zero.
func Backoff(b *v1alpha1.Backoff, n int) time.Duration {
	if b == nil || b.Initial == nil || b.Initial.Duration <= 0 || n < 1 {
		return 0
	}
	factor := int64(2)
	if b.Factor != nil && *b.Factor >= 1 {
		factor = int64(*b.Factor)
	}
	limit := time.Hour
	if b.Max != nil && b.Max.Duration > 0 {
		limit = b.Max.Duration
	}
	d := b.Initial.Duration
	for i := 1; i < n; i++ {
		if d >= limit/time.Duration(factor) {
			return limit
		}
		d *= time.Duration(factor)
	}
	return min(d, limit)
}
