package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/taskcache"
)

// Cache stores outputs of cached tasks (see package taskcache).
type Cache interface {
	Get(ctx context.Context, k taskcache.Key) (*taskcache.Entry, bool, error)
	Put(ctx context.Context, e *taskcache.Entry) error
	Reserve(ctx context.Context, k taskcache.Key, owner string, now time.Time, ttl time.Duration) (bool, string, error)
	Release(ctx context.Context, k taskcache.Key, owner string) error
}

// reservationTTL bounds how long a crashed holder blocks a serialized key;
// a live holder renews it every round.
const reservationTTL = 2 * time.Minute

// cacheCheck is what the cache says before a task launches.
type cacheCheck int

const (
	cacheRun  cacheCheck = iota // run the task
	cacheHit                    // outputs reused, node done
	cacheWait                   // another execution holds the key
)

// cacheKey is the task's key, or false when the task is not cached: its
// name, version, definition and inputs in the workflow's namespace (see
// package taskcache). A cache that cannot be used never fails a task: it
// only runs it again.
func (r *round) cacheKey(taskName string, task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage) (taskcache.Key, bool) {
	if task.Cache == nil || r.Cache == nil || taskName == "" {
		return taskcache.Key{}, false
	}
	k, err := taskcache.NewKey(r.wf.Namespace, taskName, task, inputs)
	return k, err == nil
}

func (r *round) owner(id string) string { return string(r.wf.UID) + "/" + id }

// checkCache runs before the first attempt and between attempts of a
// serialized task.
func (r *round) checkCache(ctx context.Context, k taskcache.Key, id string, task *v1alpha1.TaskTemplate, ns *v1alpha1.NodeStatus) cacheCheck {
	if len(ns.Attempts) == 0 {
		e, found, err := r.Cache.Get(ctx, k)
		if err == nil && found {
			outs, cerr := checkOutputs(task, mustJSON(e.Outputs))
			if cerr == nil {
				ns.Phase, ns.Reason, ns.FinishedAt, ns.Outputs = v1alpha1.NodeSucceeded, "CacheHit", &r.now, outs
				ns.Message = "outputs reused from the cache (written by " + e.Source + ")"
				return cacheHit
			}
		}
	}
	if !task.Cache.Serialize {
		return cacheRun
	}
	held, holder, err := r.Cache.Reserve(ctx, k, r.owner(id), r.now.Time, reservationTTL)
	if err != nil || held {
		return cacheRun
	}
	ns.Phase, ns.Reason = v1alpha1.NodeQueued, "WaitingForCache"
	ns.Message = fmt.Sprintf("waiting for %s, which runs the same cached task (%s)", holder, k)
	r.res.after(2 * time.Second)
	return cacheWait
}

// afterAttempt stores outputs on success and frees the reservation once
// the node is done either way.
func (r *round) afterAttempt(ctx context.Context, k taskcache.Key, id string, task *v1alpha1.TaskTemplate, ns *v1alpha1.NodeStatus) {
	switch ns.Phase {
	case v1alpha1.NodeSucceeded:
		outs := map[string]json.RawMessage{}
		for name, v := range ns.Outputs {
			outs[name] = v.Raw
		}
		e := &taskcache.Entry{Key: k, Outputs: outs, Source: r.wf.Namespace + "/" + r.wf.Name + "/" + id, CreatedAt: r.now.Time}
		if err := r.Cache.Put(ctx, e); err != nil {
			ns.Message = "outputs not cached: " + err.Error()
		}
	case v1alpha1.NodeFailed, v1alpha1.NodeAborted:
		if task.Cache.Serialize {
			_ = r.Cache.Release(ctx, k, r.owner(id))
		}
	}
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
