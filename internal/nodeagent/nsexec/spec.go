// Package nsexec starts a container of the image runtime: the agent
// re-executes its own binary as a hidden subcommand (Subcommand) in a new
// mount and UTS namespace; that helper builds the container's view of the
// filesystem (the image root, its volumes, a minimal /dev and /proc),
// chroots into it, drops to the container's user and execs the
// entrypoint, so the container's process is the helper's own pid.
//
// The helper reports a failure before the exec on an inherited pipe (fd
// 3, close-on-exec): the agent reads it to EOF, and an empty read means
// the exec happened. Start and Main are the two ends; Spec is what passes
// between them, as a JSON file.
package nsexec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Subcommand is the agent binary's hidden first argument that runs Main;
// a binary that embeds the agent must dispatch it before anything else:
//
//	if len(os.Args) > 1 && os.Args[1] == nsexec.Subcommand {
//		os.Exit(nsexec.Main(os.Args[2:]))
//	}
const Subcommand = "exec-container"

// Spec is everything the helper needs. Paths are on the node except
// Mount.Target and Dir, which are inside the container.
type Spec struct {
	// RootFS is the image's unpacked root, shared by every container of
	// the image and never written to unless the overlay is unavailable.
	RootFS string `json:"rootfs"`
	// Scratch is an empty per-container directory; the helper mounts a
	// tmpfs on it (visible only in its namespace) for the writable layer
	// and the mount of the container's root.
	Scratch string `json:"scratch"`
	// HostRoot runs the container on the node's own filesystem (the
	// process runtime): no image root, chroot, /dev, /proc, hostname or
	// user change; only Mounts are bound, at their Target paths of the
	// node, seen by this container alone (a missing mount point is
	// created on the node, empty). RootFS, Scratch and ReadOnlyRoot are
	// ignored.
	HostRoot bool `json:"hostRoot,omitempty"`
	// ReadOnlyRoot is securityContext.readOnlyRootFilesystem.
	ReadOnlyRoot bool     `json:"readOnlyRoot,omitempty"`
	Hostname     string   `json:"hostname"`
	Mounts       []Mount  `json:"mounts,omitempty"`
	Argv         []string `json:"argv"`
	Env          []string `json:"env"`
	// Dir is the working directory, created if missing like runc does.
	Dir    string   `json:"dir"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// Mount is a bind mount of a node path (a volume's directory or a file)
// at Target inside the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// WriteFile saves s for the helper.
func (s *Spec) WriteFile(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadSpec loads a spec saved by WriteFile.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &Spec{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("container spec %s: %w", path, err)
	}
	if len(s.Argv) == 0 {
		return nil, errors.New("no command to run: the image has no Entrypoint or Cmd and the container sets no command")
	}
	return s, nil
}

// StartError is a container that could not be started (its process never
// ran the entrypoint): a kubelet's StartError, exit code 128.
type StartError struct{ Msg string }

func (e *StartError) Error() string { return e.Msg }
