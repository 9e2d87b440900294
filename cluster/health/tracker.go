// Package health decides whether a target cluster is reachable and ready
// from the results of probing its /readyz, and (in prober.go) probes every
// Cluster and writes its conditions.
//
// The decision is a small hysteresis, pure so it can be tested with a
// table: a cluster becomes unreachable after FailureThreshold probes in a
// row got no answer, and reachable again after SuccessThreshold answers in
// a row; Ready follows the same thresholds over "answered 200 ok". The
// first probe of a cluster decides at once, so a new cluster does not wait
// for thresholds to get work or to be shut out.
package health

import "time"

// Defaults (documented in docs/operations.md).
const (
	DefaultPeriod           = 5 * time.Second
	DefaultTimeout          = 2 * time.Second
	DefaultFailureThreshold = 3
	DefaultSuccessThreshold = 1
)

// Thresholds are the consecutive results that flip a state.
type Thresholds struct {
	Failure, Success int
}

func (t Thresholds) withDefaults() Thresholds {
	if t.Failure < 1 {
		t.Failure = DefaultFailureThreshold
	}
	if t.Success < 1 {
		t.Success = DefaultSuccessThreshold
	}
	return t
}

// Result is one probe.
type Result struct {
	// Answered: the apiserver sent an HTTP response (any status).
	Answered bool
	// OK: it answered 200 to /readyz.
	OK bool
	// Err says what went wrong when not OK.
	Err     string
	Latency time.Duration
}

// State is what is known of one cluster.
type State struct {
	Probed    bool
	Reachable bool
	Ready     bool
	// LastError is the last failed probe's error ("" after a success).
	LastError string
	// ChangedAt is when Reachable last flipped. A cluster becomes
	// unreachable as of its first unanswered probe in the run that crossed
	// the threshold, so the failover grace period counts from when it went
	// silent, not from when the threshold was reached.
	ChangedAt time.Time
	// silentSince is the time of the first unanswered probe of the
	// current run.
	silentSince time.Time
	// runs of the same outcome, for the thresholds
	answered, silent, ok, notOK int
}

// Observe folds one probe result into the state.
func Observe(s State, th Thresholds, r Result, now time.Time) State {
	th = th.withDefaults()
	if r.Answered {
		s.answered, s.silent = s.answered+1, 0
	} else {
		if s.silent == 0 {
			s.silentSince = now
		}
		s.answered, s.silent = 0, s.silent+1
	}
	if r.OK {
		s.ok, s.notOK = s.ok+1, 0
		s.LastError = ""
	} else {
		s.ok, s.notOK = 0, s.notOK+1
		s.LastError = r.Err
	}
	if !s.Probed {
		s.Probed, s.Reachable, s.Ready, s.ChangedAt = true, r.Answered, r.OK, now
		return s
	}
	switch {
	case s.Reachable && s.silent >= th.Failure:
		s.Reachable, s.ChangedAt = false, s.silentSince
	case !s.Reachable && s.answered >= th.Success:
		s.Reachable, s.ChangedAt = true, now
	}
	switch {
	case s.Ready && s.notOK >= th.Failure:
		s.Ready = false
	case !s.Ready && s.ok >= th.Success:
		s.Ready = true
	}
	if !s.Reachable {
		s.Ready = false
	}
	return s
}
