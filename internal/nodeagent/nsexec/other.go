//go:build !linux

package nsexec

import (
	"errors"
	"io"
	"syscall"
	"time"
)

var errNotLinux = errors.New("the image runtime needs Linux mount namespaces: use the process runtime")

// Process is a started container process; on this OS none can start.
type Process struct{ Started time.Time }

// Start fails: mount namespaces are Linux only.
func Start(string, *Spec, string, io.Writer) (*Process, error) { return nil, errNotLinux }

// Main fails: mount namespaces are Linux only.
func Main([]string) int { return 128 }

// Signal does nothing.
func (p *Process) Signal(syscall.Signal) error { return errNotLinux }

// Done is never closed.
func (p *Process) Done() <-chan struct{} { return nil }

// ExitCode is 128.
func (p *Process) ExitCode() int32 { return 128 }
