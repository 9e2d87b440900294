// Package plugins defines the interface every task plugin implements and
// the registry the engine finds them in. A plugin is asked, once per
// reconcile round, to move one task attempt forward (Handle); it may be
// asked to stop it (Abort) and to release what it holds (Finalize).
//
// Handle must be idempotent: the engine may call it again for the same
// attempt after a crash or a handoff, so creating a resource twice must be
// harmless (the pod plugin uses deterministic pod names).
package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// Phase is where an attempt stands after Handle.
type Phase int

// Attempt phases as a plugin reports them.
const (
	// PhaseQueued: accepted but not running yet (pod pending).
	PhaseQueued Phase = iota + 1
	// PhaseRunning: the task is running.
	PhaseRunning
	// PhaseSucceeded: done; Outputs hold the task's raw outputs.
	PhaseSucceeded
	// PhaseFailed: the task's own failure; it spends a user retry.
	PhaseFailed
	// PhaseSystemFailed: not the task's fault (pod deleted, evicted, node
	// lost); retried without spending a user retry.
	PhaseSystemFailed
)

func (p Phase) String() string {
	switch p {
	case PhaseQueued:
		return "Queued"
	case PhaseRunning:
		return "Running"
	case PhaseSucceeded:
		return "Succeeded"
	case PhaseFailed:
		return "Failed"
	case PhaseSystemFailed:
		return "SystemFailed"
	}
	return "Unknown"
}

// PhaseInfo is Handle's answer.
type PhaseInfo struct {
	Phase     Phase
	Reason    string
	Message   string
	ExitCode  *int32
	StartedAt *time.Time
	// Outputs is the task's output object as JSON (PhaseSucceeded).
	Outputs json.RawMessage
	// Resource names what the plugin launched (the pod). Once recorded,
	// later rounds pass Launched=true.
	Resource string
	// State, when not empty, replaces the attempt's plugin state (kept in
	// the attempt's status, at most 1 KiB) that later rounds get back.
	State string
	// CheckAfter asks for the next round no later than this (polling).
	CheckAfter time.Duration
}

// MaxStateSize bounds PhaseInfo.State: it lives in the Workflow's status.
const MaxStateSize = 1024

// ClusterFree is implemented by plugins whose tasks run no pod (the http
// plugin): their attempts are not placed on a target cluster.
type ClusterFree interface {
	ClusterFree() bool
}

// NeedsCluster reports whether p's attempts are placed on a cluster.
func NeedsCluster(p Plugin) bool {
	cf, ok := p.(ClusterFree)
	return !ok || !cf.ClusterFree()
}

// TaskID identifies one attempt of one node of one workflow.
type TaskID struct {
	Namespace   string
	Workflow    string
	WorkflowUID string
	Node        string
	Attempt     int32
}

// TaskContext is what a plugin gets for one attempt.
type TaskContext struct {
	ID   TaskID
	Task *v1alpha1.TaskTemplate
	// Inputs are the resolved, type-checked inputs as JSON values.
	Inputs map[string]json.RawMessage
	// Cluster is the target the attempt was placed on.
	Cluster *Cluster
	// Launched is true once an earlier round saw the attempt's resource
	// created, so a missing resource means it was lost, not that it is new.
	Launched bool
	// State is what the plugin stored for this attempt (PhaseInfo.State).
	State string
	// Fence, when set, says whether this replica may still act for the
	// workflow (its membership lease holds). The executor asks it before
	// each plugin call; a plugin asks it again (Fenced) right before a
	// side effect the next owner could not see coming, such as creating
	// a pod or calling an endpoint, because a replica frozen or cut off
	// between the two would wake after its partition moved and make it
	// anyway: a pod beside the one the new owner placed.
	Fence func() error
	// Materialize, when set, returns the value an offloaded input stands
	// for (read back from the object store, verified), and an inline one
	// as it is: for a plugin that computes with its inputs (an http body)
	// rather than handing them on.
	Materialize func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error)
}

// Input returns input name's value, read back when offloaded (and as it
// is without Materialize).
func (tc *TaskContext) Input(ctx context.Context, name string) (json.RawMessage, bool, error) {
	raw, ok := tc.Inputs[name]
	if !ok || tc.Materialize == nil {
		return raw, ok, nil
	}
	v, err := tc.Materialize(ctx, raw)
	return v, true, err
}

// Fenced returns Fence's verdict (nil when there is no fence: an
// unsharded propeller).
func (tc *TaskContext) Fenced() error {
	if tc.Fence == nil {
		return nil
	}
	return tc.Fence()
}

// Plugin runs one type of task.
type Plugin interface {
	// Type is the task type this plugin runs (TaskTemplate.Type).
	Type() string
	Handle(ctx context.Context, tc *TaskContext) (PhaseInfo, error)
	Abort(ctx context.Context, tc *TaskContext) error
	Finalize(ctx context.Context, tc *TaskContext) error
}

// Registry maps task types to plugins. Safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	plugins map[string]Plugin
}

// NewRegistry returns a registry holding ps.
func NewRegistry(ps ...Plugin) *Registry {
	r := &Registry{plugins: map[string]Plugin{}}
	for _, p := range ps {
		r.Register(p)
	}
	return r
}

// Register adds p; a second plugin for one type is a programming error.
func (r *Registry) Register(p Plugin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.plugins[p.Type()]; dup {
		panic(fmt.Sprintf("plugins: type %q registered twice", p.Type()))
	}
	r.plugins[p.Type()] = p
}

// Get returns the plugin for a task type.
func (r *Registry) Get(taskType string) (Plugin, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.plugins[taskType]
	if !ok {
		types := make([]string, 0, len(r.plugins))
		for t := range r.plugins {
			types = append(types, t)
		}
		sort.Strings(types)
		return nil, fmt.Errorf("no plugin for task type %q (registered: %v)", taskType, types)
	}
	return p, nil
}
