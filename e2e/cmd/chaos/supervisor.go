package main

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// component is one Rotor process the supervisor keeps running, as a
// StatefulSet or Deployment would.
type component struct {
	name  string
	start func() (*localcluster.Process, error)
	// holdUntil: a fault keeps it down until then (a pod's restart delay).
	holdUntil time.Time
	// stopped: SIGSTOPped by a fault; not live, but not to be restarted.
	stopped bool
	// exitSeen is when the supervisor first saw it exited (zero: running).
	exitSeen time.Time
	// selfExits counts exits no fault caused (e.g. a lost lease after a
	// freeze or an etcd outage: the replica ends itself by design).
	selfExits, restarts int
	faulted             bool
	replica             bool
	// cut: its etcd traffic is cut off; not live, though it runs.
	cut bool
}

// supervisor restarts exited Rotor processes after restartDelay, and says
// which ones are live (running and not frozen).
type supervisor struct {
	env   *harness.Env
	mu    sync.Mutex
	comps map[string]*component
	errs  []string
}

// restartDelay is how long an exited process stays down before the
// supervisor starts it again (kubelet's first back-off step is 10 s; a
// shorter one keeps the soak busy).
const restartDelay = time.Second

// newSupervisor supervises the managers the environment started and one
// replica per proxy, each reaching etcd through its proxy (the flag given
// last wins).
func newSupervisor(env *harness.Env, sh localcluster.ShardingOptions, managers int, proxies []*etcdProxy) *supervisor {
	s := &supervisor{env: env, comps: map[string]*component{}}
	for i, p := range proxies {
		n := fmt.Sprintf("rotor-propeller-%d", i)
		rsh := sh
		rsh.ReplicaArgs = append(append([]string(nil), sh.ReplicaArgs...), "--etcd-endpoints="+p.endpoint())
		s.comps[n] = &component{name: n, replica: true, start: func() (*localcluster.Process, error) { return env.StartShardedPropeller(i, rsh) }}
	}
	for i := 0; i < managers; i++ {
		n := fmt.Sprintf("rotor-manager-%d", i)
		s.comps[n] = &component{name: n, start: func() (*localcluster.Process, error) { return env.StartManager(i, sh) }}
	}
	return s
}

// startReplicas starts every replica for the first time.
func (s *supervisor) startReplicas() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.comps {
		if !c.replica {
			continue
		}
		if _, err := c.start(); err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
	}
	return nil
}

// setCut marks a replica cut off from etcd (or not). An exit while cut
// (its lease lost) is the fault's doing.
func (s *supervisor) setCut(name string, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.comps[name].cut = v
	if v {
		s.comps[name].faulted = true
	}
}

// run checks every 200 ms until stop is closed.
func (s *supervisor) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		s.tick(time.Now())
	}
}

func (s *supervisor) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.comps {
		p, err := s.env.Process(c.name)
		if err != nil {
			continue
		}
		if exited, _ := p.Exited(); !exited {
			c.exitSeen = time.Time{}
			continue
		}
		if c.exitSeen.IsZero() {
			c.exitSeen = now
			if !c.faulted {
				c.selfExits++
				say("supervisor: %s exited by itself (log %s)", c.name, p.Log)
			}
		}
		if now.Before(c.holdUntil) || now.Before(c.exitSeen.Add(restartDelay)) {
			continue
		}
		if _, err := c.start(); err != nil {
			s.errs = append(s.errs, fmt.Sprintf("restart %s: %v", c.name, err))
			say("supervisor: restart %s: %v", c.name, err)
			continue
		}
		c.restarts++
		c.exitSeen, c.faulted = time.Time{}, c.cut // exits while still cut are the cut's
	}
}

// kill SIGKILLs a component and keeps it down for down. A component
// already down (another fault ended it and the supervisor has not
// restarted it yet) is not killed again: errSkipped, as a kill that did
// nothing has no recovery to time.
func (s *supervisor) kill(name string, down time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.comps[name]
	if !ok {
		return fmt.Errorf("no component %s", name)
	}
	p, err := s.env.Process(name)
	if err != nil {
		return err
	}
	if exited, _ := p.Exited(); exited {
		return errSkipped
	}
	// Held under mu, so the supervisor's tick cannot restart it between
	// the signal and the hold.
	if err := p.Signal(syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return errSkipped // it exited just now
		}
		return err
	}
	c.holdUntil, c.faulted = time.Now().Add(down), true
	return nil
}

// freeze SIGSTOPs a component for d, then SIGCONTs it. It blocks.
func (s *supervisor) freeze(name string, d time.Duration) error {
	p, err := s.env.Process(name)
	if err != nil {
		return err
	}
	s.setStopped(name, true)
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		s.setStopped(name, false)
		return err
	}
	time.Sleep(d)
	s.mu.Lock()
	// If it exits after SIGCONT (its lease is gone), that exit is the
	// fault's doing.
	s.comps[name].faulted = true
	s.mu.Unlock()
	err = p.Signal(syscall.SIGCONT)
	s.setStopped(name, false)
	return err
}

func (s *supervisor) setStopped(name string, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.comps[name].stopped = v
}

// live reports whether a component's newest process is running, not
// frozen and not cut off from etcd.
func (s *supervisor) live(name string) bool {
	s.mu.Lock()
	c, ok := s.comps[name]
	stopped := ok && (c.stopped || c.cut)
	s.mu.Unlock()
	if !ok || stopped {
		return false
	}
	p, err := s.env.Process(name)
	if err != nil {
		return false
	}
	exited, _ := p.Exited()
	return !exited
}

// allLive waits until every component is live, or timeout.
func (s *supervisor) allLive(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var down []string
		for n := range s.comps {
			if !s.live(n) {
				down = append(down, n)
			}
		}
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for every Rotor process to run again; still down: %v", timeout, down)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// counts returns the self-exits and restarts per component.
func (s *supervisor) counts() (selfExits, restarts map[string]int, errs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	selfExits, restarts = map[string]int{}, map[string]int{}
	for n, c := range s.comps {
		selfExits[n], restarts[n] = c.selfExits, c.restarts
	}
	return selfExits, restarts, append([]string(nil), s.errs...)
}
