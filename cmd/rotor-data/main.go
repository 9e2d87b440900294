// Command rotor-data is Rotor's data agent, added to task pods that move
// files, directories or offloaded values (package data/agent):
//
//	rotor-data download   init container: fetch the inputs into /rotor/inputs
//	rotor-data upload     native sidecar: once SIGTERM says the main container
//	                      exited, store /rotor/outputs and report references
//	rotor-data ready      exit 0 once the sidecar handles SIGTERM (for a probe)
//	rotor-data wait-ready the sidecar's postStart hook: wait until it is
//
// The attempt's spec comes in ROTOR_DATA_SPEC (JSON, agent.Spec), the S3
// credentials in ROTOR_DATA_ACCESS_KEY_ID and ROTOR_DATA_SECRET_ACCESS_KEY
// (from a Secret). The outcome goes to the termination message
// ($ROTOR_OUTPUT_FILE in the sandbox's process runtime, else
// /dev/termination-log): {"outputs": {...}} or {"error": {...}}. Exit
// codes: 0 done, 1 a system failure (the store), 2 the task's or its
// inputs' fault (missing object, checksum mismatch, output missing or too
// large); anything else is a bug or a signal.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rotor-dev/rotor/data/agent"
	"github.com/rotor-dev/rotor/data/store"
)

// readyMarker is created in the shared volume once the upload sidecar
// handles SIGTERM: before that, a main container that exits at once
// would have it killed before it uploaded anything.
const readyMarker = ".rotor-agent-ready"

// waitReady bounds wait-ready: the sidecar opens the store (no network
// call) and writes one file first.
const waitReady = 30 * time.Second

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: rotor-data download|upload|ready|wait-ready")
		os.Exit(64)
	}
	spec, err := readSpec()
	if err != nil {
		os.Exit(report(err))
	}
	switch os.Args[1] {
	case "ready":
		if _, err := os.Stat(filepath.Join(dirOf(spec), readyMarker)); err != nil {
			fmt.Fprintln(os.Stderr, "the upload sidecar is not ready yet")
			os.Exit(1)
		}
	case "wait-ready":
		// The sidecar's postStart hook: the next container starts only
		// once it returns, so the task cannot exit before the sidecar
		// handles SIGTERM; milliseconds, where a probe's period is 1 s.
		deadline := time.Now().Add(waitReady)
		for {
			if _, err := os.Stat(filepath.Join(dirOf(spec), readyMarker)); err == nil {
				return
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "the upload sidecar was not ready within %s\n", waitReady)
				os.Exit(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	case "download":
		st, err := open(spec)
		if err == nil {
			err = agent.Download(context.Background(), st, spec)
		}
		os.Exit(report(err))
	case "upload":
		os.Exit(upload(spec))
	default:
		fmt.Fprintf(os.Stderr, "rotor-data: unknown command %q: use download, upload, ready or wait-ready\n", os.Args[1])
		os.Exit(64)
	}
}

func upload(spec *agent.Spec) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	st, err := open(spec)
	if err != nil {
		return report(err)
	}
	// The task writes into outputs/: it is there before the task starts.
	if err := os.MkdirAll(filepath.Join(dirOf(spec), "outputs"), 0o777); err != nil {
		return report(fmt.Errorf("create the outputs directory: %w", err))
	}
	marker := filepath.Join(dirOf(spec), readyMarker)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		return report(fmt.Errorf("mark the sidecar ready: %w", err))
	}
	<-term // the main container has exited (or the pod is being deleted)
	res, err := agent.Upload(context.Background(), st, spec)
	if err != nil {
		return report(err)
	}
	b, _ := json.Marshal(res)
	if len(b) > maxMessage {
		// Too many outputs for one termination message: the task's
		// declaration, not the store, so no retry would help.
		return report(&agent.Error{Msg: fmt.Sprintf("the outputs' references take %d bytes, over the %d a termination message holds: declare fewer file and directory outputs (one directory can hold them all)", len(b), maxMessage)})
	}
	if err := writeMessage(b); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// maxMessage is what a kubelet keeps of a termination message.
const maxMessage = 4096

func readSpec() (*agent.Spec, error) {
	raw := os.Getenv("ROTOR_DATA_SPEC")
	if raw == "" {
		return nil, &agent.Error{Msg: "ROTOR_DATA_SPEC is not set: rotor-data runs in task pods Rotor builds"}
	}
	s := &agent.Spec{}
	if err := json.Unmarshal([]byte(raw), s); err != nil {
		return nil, &agent.Error{Msg: "ROTOR_DATA_SPEC: " + err.Error()}
	}
	return s, nil
}

func open(spec *agent.Spec) (*store.Store, error) {
	st, err := store.Open(context.Background(), store.Config{URL: spec.Store,
		AccessKeyID: os.Getenv("ROTOR_DATA_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("ROTOR_DATA_SECRET_ACCESS_KEY")})
	if err != nil {
		return nil, &agent.Error{System: true, Msg: err.Error()}
	}
	return st, nil
}

func dirOf(s *agent.Spec) string {
	if s.Dir == "" {
		return "/rotor"
	}
	return s.Dir
}

// report writes err (nil: nothing) to the termination message and
// stderr, and returns the exit code.
func report(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "rotor-data:", err)
	var ae *agent.Error
	system := !errors.As(err, &ae) || ae.System
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"system": system, "message": err.Error()}})
	if werr := writeMessage(b); werr != nil {
		fmt.Fprintln(os.Stderr, werr)
	}
	if system {
		return 1
	}
	return 2
}

func writeMessage(b []byte) error {
	path := os.Getenv("ROTOR_OUTPUT_FILE")
	if path == "" {
		path = "/dev/termination-log"
	}
	if len(b) > maxMessage {
		b = b[:maxMessage] // an error's message: what fits of it
	}
	return os.WriteFile(path, b, 0o644)
}
