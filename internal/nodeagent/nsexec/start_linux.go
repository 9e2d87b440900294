package nsexec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// helperTimeout bounds the helper's set-up, mounts included.
const helperTimeout = 30 * time.Second

// Process is a started container process (the helper, which became the
// entrypoint by exec).
type Process struct {
	// Started is when the entrypoint was exec'd.
	Started time.Time
	pid     int
	done    chan struct{}
	state   *os.ProcessState
}

// Start runs helper (the agent's binary) as the container described by
// spec, saved first at specFile, with stdout and stderr to log. It
// returns once the entrypoint is exec'd, or a *StartError if the helper
// failed before that (bad mount, missing executable, ...).
func Start(helper string, spec *Spec, specFile string, log io.Writer) (*Process, error) {
	if err := spec.WriteFile(specFile); err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	cmd := exec.Command(helper, Subcommand, "--spec", specFile)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{} // the helper needs none; the container's comes from spec
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		// Own process group: signals reach the entrypoint's children too.
		Setpgid: true,
		// Containers die with the agent, as they would with a kubelet's
		// container runtime gone; a new agent starts them again.
		Pdeathsig: syscall.SIGKILL,
	}
	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go p.own(cmd, started)
	err = <-started
	pw.Close()
	if err != nil {
		return nil, &StartError{Msg: fmt.Sprintf("start container helper %s: %v", helper, err)}
	}
	// EOF comes at the exec (the pipe is close-on-exec) or the helper's
	// exit; a binary that does not dispatch Subcommand would never send it.
	_ = pr.SetReadDeadline(time.Now().Add(helperTimeout))
	msg, err := io.ReadAll(pr)
	if err != nil {
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
		return nil, &StartError{Msg: fmt.Sprintf("container helper %s did not start the container within %s (%v): does it dispatch %q?", helper, helperTimeout, err, Subcommand)}
	}
	if len(msg) > 0 {
		<-p.done
		return nil, &StartError{Msg: string(msg)}
	}
	p.Started = time.Now()
	return p, nil
}

// own starts and waits for cmd on one locked OS thread: the parent-death
// signal fires when the thread that forked the child exits, so that
// thread must outlive the child.
func (p *Process) own(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		started <- err
		close(p.done)
		return
	}
	p.pid = cmd.Process.Pid
	started <- nil
	_ = cmd.Wait()
	p.state = cmd.ProcessState
	close(p.done)
}

// Signal sends sig to the container's process group.
func (p *Process) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitCode is the exit status after Done, 128+n for a death by signal n
// as a container runtime reports it.
func (p *Process) ExitCode() int32 {
	if p.state == nil {
		return 128
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(p.state.ExitCode())
}
