package plugins

import "errors"

// PermanentError is a plugin error that calling again cannot fix: the
// target refused the attempt's resource as invalid or forbidden by policy,
// or a resource of that name belongs to another workflow. The engine ends
// the attempt as failed (a user failure: retries, if the task has any,
// start a new attempt under a new name) with Reason and the error's text
// on the node, instead of retrying the round for ever. Every other error
// is taken as transient and the round is retried with backoff.
type PermanentError struct {
	// Reason is the node's reason, CamelCase (PodRejected, PodConflict).
	Reason string
	Err    error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent with reason.
func Permanent(reason string, err error) error {
	return &PermanentError{Reason: reason, Err: err}
}

// AsPermanent returns the permanent error in err's chain, if any.
func AsPermanent(err error) (*PermanentError, bool) {
	var p *PermanentError
	ok := errors.As(err, &p)
	return p, ok
}
