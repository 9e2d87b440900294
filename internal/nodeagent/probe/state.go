// Package probe runs a container's startup, readiness and liveness probes.
// State is the pure core (thresholds and timing, no clock); Runner is the
// shell that sleeps on an injected clock and calls a check.
package probe

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Result is a probe's current verdict.
type Result int

const (
	// Unknown is a startup probe's verdict until its threshold is met.
	Unknown Result = iota
	// Success means the threshold of consecutive successes was met.
	Success
	// Failure means the threshold of consecutive failures was met.
	Failure
)

func (r Result) String() string {
	return [...]string{"Unknown", "Success", "Failure"}[r]
}

// Spec is a probe's timing and thresholds, defaulted like the API server
// defaults them.
type Spec struct {
	InitialDelay, Period, Timeout      time.Duration
	SuccessThreshold, FailureThreshold int
}

// SpecFor returns p's timing with API defaults for zero fields.
func SpecFor(p *corev1.Probe) Spec {
	s := Spec{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:          time.Duration(p.TimeoutSeconds) * time.Second,
		SuccessThreshold: int(p.SuccessThreshold), FailureThreshold: int(p.FailureThreshold),
	}
	if s.Period <= 0 {
		s.Period = 10 * time.Second
	}
	if s.Timeout <= 0 {
		s.Timeout = time.Second
	}
	if s.SuccessThreshold <= 0 {
		s.SuccessThreshold = 1
	}
	if s.FailureThreshold <= 0 {
		s.FailureThreshold = 3
	}
	return s
}

// State is one probe of one container run: the verdict flips only after
// SuccessThreshold consecutive successes or FailureThreshold consecutive
// failures, like a kubelet's probe worker. Not safe for concurrent use.
type State struct {
	spec   Spec
	due    time.Time
	result Result
	// run counts consecutive observations equal to lastOK.
	run      int
	lastOK   bool
	observed bool
}

// NewState starts a probe for a container that started at started, with
// the kubelet's initial verdict: Failure for readiness (not ready until
// proven), Success for liveness (alive until proven dead), Unknown for
// startup.
func NewState(spec Spec, initial Result, started time.Time) *State {
	return &State{spec: spec, result: initial, due: started.Add(spec.InitialDelay)}
}

// Due is when the next check should start.
func (s *State) Due() time.Time { return s.due }

// Result is the current verdict.
func (s *State) Result() Result { return s.result }

// Spec is the probe's timing.
func (s *State) Spec() Spec { return s.spec }

// Observe records a check that started at now and reports whether the
// verdict changed.
func (s *State) Observe(now time.Time, ok bool) bool {
	s.due = now.Add(s.spec.Period)
	if s.observed && ok == s.lastOK {
		s.run++
	} else {
		s.run, s.lastOK, s.observed = 1, ok, true
	}
	target, threshold := Failure, s.spec.FailureThreshold
	if ok {
		target, threshold = Success, s.spec.SuccessThreshold
	}
	if s.result != target && s.run >= threshold {
		s.result = target
		return true
	}
	return false
}
