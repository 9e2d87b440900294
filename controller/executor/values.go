package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/template"
	"github.com/rotor-dev/rotor/controller/values"
	"github.com/rotor-dev/rotor/data/offload"
	"github.com/rotor-dev/rotor/data/ref"
)

// Values keeps a Workflow's status bounded whatever its data's size: a
// string, object or array value over ref.InlineLimit is stored as an
// object and the status holds {"$ref": ...}. package location implements
// it over the raw-data locations (package offload does the work in each).
//
// The rule the executor follows: a value passed whole from one node to
// the next ("{{nodes.a.outputs.x}}") travels as it is, offloaded or not,
// and is never read; where the workflow computes with a value (a string
// that interpolates it, a list that gathers it, a branch condition, a
// map's items) it is read back, verified, and what is computed is
// offloaded in turn when it is large and goes into the status.
type Values interface {
	// Root is the root URI of the store that serves namespace (its own
	// location, or the install's): its prefixes are made under it.
	Root(namespace string) string
	// Offload returns raw inline when it fits, else stores it under
	// prefix and returns its reference.
	Offload(ctx context.Context, prefix, name string, raw json.RawMessage) (json.RawMessage, error)
	// Materialize returns the value an offloaded reference stands for
	// (raw itself when inline).
	Materialize(ctx context.Context, raw json.RawMessage) (json.RawMessage, error)
	// Files lists a directory's files as file references, with their
	// paths (a map over a directory).
	Files(ctx context.Context, dir ref.Ref) ([]ref.Ref, []string, error)
}

// errNoStore is an offloaded value met by a propeller without a store.
var errNoStore = errors.New("the value is offloaded to the object store, but this propeller has none: set --raw-data-url")

// storeDown reports whether err is the object store failing, which a
// node waits out rather than fails on.
func storeDown(err error) bool {
	var u *offload.Unavailable
	return errors.As(err, &u)
}

// ReasonWaitingForStore is a node's reason while the object store it
// needs does not answer.
const ReasonWaitingForStore = "WaitingForObjectStore"

// storeWait is how soon a node waiting for the store looks again.
const storeWait = 5 * time.Second

// badInputs fails a node whose inputs could not be made, unless the
// object store is what failed: then the node waits for it, saying so.
func (r *round) badInputs(ns *v1alpha1.NodeStatus, what string, err error) {
	if storeDown(err) {
		if ns.Phase == v1alpha1.NodeNotStarted {
			ns.Phase = v1alpha1.NodeQueued
		}
		ns.Reason, ns.Message = ReasonWaitingForStore, what+err.Error()
		r.res.after(storeWait)
		return
	}
	r.failNode(ns, "BadInputs", what+err.Error())
}

// waitForStore records on a node that what it produced waits for the
// store (err when the store is down), and reports whether it did; any
// other error is the round's.
func (r *round) waitForStore(ns *v1alpha1.NodeStatus, what string, err error) bool {
	if !storeDown(err) {
		return false
	}
	ns.Reason, ns.Message = ReasonWaitingForStore, what+": "+err.Error()
	r.res.after(storeWait)
	return true
}

// materialize reads an offloaded value back; an inline one is returned
// as it is. Only the workflow's own namespace's objects are read: a
// reference written by hand into a spec could name another tenant's, and
// what is read here ends up in this tenant's pods.
func (r *round) materialize(v json.RawMessage) (json.RawMessage, error) {
	return r.materializeCtx(r.ctx, v)
}

// materializeCtx is materialize under ctx: what a plugin that computes
// with its inputs (TaskContext.Materialize) is given, so an http task's
// body cannot carry another tenant's object either.
func (r *round) materializeCtx(ctx context.Context, v json.RawMessage) (json.RawMessage, error) {
	off, isRef, err := ref.ParseOffloaded(v)
	if err != nil || !isRef {
		return v, err
	}
	if r.Values == nil {
		return nil, errNoStore
	}
	if err := r.own(off); err != nil {
		return nil, err
	}
	return r.Values.Materialize(ctx, v)
}

// own refuses a reference outside the workflow's namespace's part of the
// store.
func (r *round) own(x ref.Ref) error {
	part := ref.Join(r.Values.Root(r.wf.Namespace), r.wf.Namespace) + "/"
	if !ref.Within(x.URI, part) {
		return fmt.Errorf("%s is not in namespace %s's part of the object store (%s): a workflow reads only its own namespace's data", x.URI, r.wf.Namespace, part)
	}
	return nil
}

// valueLookup is lookup with offloaded values read back: for what
// computes with them.
func (r *round) valueLookup(sc *scope) template.Lookup {
	raw := r.lookup(sc)
	return func(tr template.Ref) (json.RawMessage, error) {
		v, err := raw(tr)
		if err != nil {
			return nil, err
		}
		m, err := r.materialize(v)
		if err != nil {
			return nil, fmt.Errorf("{{%s}}: %w", tr, err)
		}
		return m, nil
	}
}

// bind evaluates one binding: exactly one reference yields its value as
// it is (a reference to an offloaded value travels unread); anything
// that builds a new value reads the values it uses.
func (r *round) bind(sc *scope, binding json.RawMessage) (json.RawMessage, error) {
	t, isString, err := template.ParseBinding(binding)
	if err != nil {
		return nil, err
	}
	if isString {
		if one, ok := t.Single(); ok {
			return r.lookup(sc)(one)
		}
	}
	return template.Resolve(binding, r.valueLookup(sc))
}

// keep returns v as it may go into the status for node id: offloaded
// under the node's prefix when large and a store is set, else as it is
// (a propeller without a store keeps every value inline, as before the
// data plane).
func (r *round) keep(id string, attempt int32, name string, v json.RawMessage) (json.RawMessage, error) {
	if r.Values == nil || len(v) <= ref.InlineLimit {
		return v, nil
	}
	prefix, err := ref.Attempt{Namespace: r.wf.Namespace, Workflow: r.wf.Name, WorkflowUID: string(r.wf.UID), Node: id, Attempt: attempt}.Prefix(r.Values.Root(r.wf.Namespace))
	if err != nil {
		return nil, fmt.Errorf("offload %s of %s: %w", name, id, err)
	}
	return r.Values.Offload(r.ctx, prefix, name, v)
}

// largeInputsAsFiles offloads a pod task's string, object and array
// inputs that came out over the inline limit (text interpolating a large
// value, a gathered list): a pod gets values that large as files, as it
// gets offloaded ones, because an environment variable holds 128 KiB at
// most and a pod object 1.5 MB. Without a store they stay as they are.
func (r *round) largeInputsAsFiles(id string, task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if r.Values == nil {
		return inputs, nil
	}
	var out map[string]json.RawMessage
	for name, v := range inputs {
		if len(v) <= ref.InlineLimit || !values.Offloadable(task.Inputs[name]) {
			continue
		}
		if _, isRef, _ := ref.ParseOffloaded(v); isRef {
			continue
		}
		kept, err := r.keep(id, 0, "input-"+name, v)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = maps.Clone(inputs)
		}
		out[name] = kept
	}
	if out == nil {
		return inputs, nil
	}
	return out, nil
}

// keepAll applies keep to each of a node's outputs.
func (r *round) keepAll(id string, attempt int32, outs map[string]apiextJSON) (map[string]apiextJSON, error) {
	for k, v := range outs {
		kept, err := r.keep(id, attempt, k, v.Raw)
		if err != nil {
			return nil, err
		}
		outs[k] = apiextJSON{Raw: kept}
	}
	return outs, nil
}

// scopeNode is the node path under which a DAG's own outputs are
// offloaded: the nested node's, or "_workflow" for the top (no node
// name holds "_", so it cannot meet a node's).
func scopeNode(sc *scope) string {
	if sc.prefix == "" {
		return "_workflow"
	}
	return sc.prefix[:len(sc.prefix)-1]
}

// mapItems turns a map's resolved "over" into its items: an array (read
// back when offloaded), or a directory reference, whose files become
// file references, one item each.
func (r *round) mapItems(over json.RawMessage) ([]json.RawMessage, error) {
	v, err := r.materialize(over)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err == nil {
		return items, nil
	}
	var dir ref.Ref
	if json.Unmarshal(v, &dir) == nil && dir.Check() == nil && dir.IsDir() {
		if r.Values == nil {
			return nil, fmt.Errorf("a map over the directory %s needs the object store: set --raw-data-url", dir.URI)
		}
		if err := r.own(dir); err != nil {
			return nil, err
		}
		files, _, err := r.Values.Files(r.ctx, dir)
		if err != nil {
			return nil, err
		}
		items = make([]json.RawMessage, len(files))
		for i, f := range files {
			items[i], _ = json.Marshal(f)
		}
		return items, nil
	}
	return nil, fmt.Errorf("over must yield an array or a directory, got %.60s", v)
}
