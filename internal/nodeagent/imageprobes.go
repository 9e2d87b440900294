package nodeagent

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotor-dev/rotor/internal/nodeagent/probe"
)

// startProbes runs the container's probes as a kubelet does: the startup
// probe first, and readiness and liveness only once it has succeeded (at
// once without one). Readiness drives containerStatuses[].ready (a
// container without a readiness probe is ready once started); a liveness
// or startup failure asks on kill for the container to be killed. The
// returned func stops the probes and waits for them.
func (c *containerRun) startProbes(kill chan<- string) func() {
	ctx, cancel := context.WithCancel(c.w.ctx)
	var wg sync.WaitGroup
	afterStartup := func() {
		c.update(func(st *corev1.ContainerStatus) {
			if st.State.Running != nil {
				st.Started = ptr(true)
			}
		})
		if !c.runProbe(ctx, &wg, c.spec.ReadinessProbe, probe.Failure, "Readiness", func(r probe.Result, err error) {
			c.setReady(r == probe.Success, err)
		}) {
			c.setReady(true, nil)
		}
		c.runProbe(ctx, &wg, c.spec.LivenessProbe, probe.Success, "Liveness", func(r probe.Result, err error) {
			if r == probe.Failure {
				c.unhealthy("Liveness", err)
				requestKill(kill, fmt.Sprintf("Container %s failed liveness probe, will be restarted", c.spec.Name))
			}
		})
	}
	if c.spec.StartupProbe == nil {
		afterStartup()
	} else {
		sctx, scancel := context.WithCancel(ctx)
		c.runProbe(sctx, &wg, c.spec.StartupProbe, probe.Unknown, "Startup", func(r probe.Result, err error) {
			switch r {
			case probe.Success:
				scancel() // a startup probe's work is done once it succeeds
				afterStartup()
			case probe.Failure:
				c.unhealthy("Startup", err)
				requestKill(kill, fmt.Sprintf("Container %s failed startup probe, will be restarted", c.spec.Name))
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// runProbe starts p's runner, if p is set, and reports whether it was. A
// probe this runtime cannot run (exec) is taken as passing, with a
// warning event, rather than failing a container that may be healthy.
func (c *containerRun) runProbe(ctx context.Context, wg *sync.WaitGroup, p *corev1.Probe, initial probe.Result, kind string, onChange func(probe.Result, error)) bool {
	if p == nil {
		return false
	}
	check, err := probe.CheckFor(p, c.spec, c.w.pod.Status.PodIP)
	if err != nil {
		c.log.Warn("probe not run; taken as passing", "probe", kind, "err", err)
		c.event(corev1.EventTypeWarning, "ProbeNotSupported", kind+" probe taken as passing: "+err.Error())
		onChange(probe.Success, nil)
		return true
	}
	r := &probe.Runner{Clock: c.clock, State: probe.NewState(probe.SpecFor(p), initial, c.clock.Now()), Check: check, OnChange: onChange}
	wg.Go(func() { r.Run(ctx) })
	return true
}

func (c *containerRun) setReady(ready bool, err error) {
	if !ready {
		c.unhealthy("Readiness", err)
	}
	c.update(func(st *corev1.ContainerStatus) {
		if st.State.Running != nil { // a late verdict must not mark a dead container ready
			st.Ready = ready
		}
	})
}

func (c *containerRun) unhealthy(kind string, err error) {
	msg := kind + " probe failed"
	if err != nil {
		msg += ": " + err.Error()
	}
	c.log.Info("probe failed", "probe", kind, "err", err)
	c.event(corev1.EventTypeWarning, "Unhealthy", msg)
}

func requestKill(kill chan<- string, why string) {
	select {
	case kill <- why:
	default: // a kill is already requested
	}
}
