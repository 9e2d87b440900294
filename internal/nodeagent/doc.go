// Package nodeagent is the "process" node runtime of Rotor's development
// sandbox: a tiny kubelet stand-in that registers a Node and runs every pod
// bound to it by running each container's command and args as a local
// process, with the container's env, ignoring its image.
//
// It is a development runtime only. It gives no isolation, no resource
// limits, no images, volumes, probes or networking: a task runs with the
// agent's own user and filesystem. Its one job is to let the sandbox compute
// real results without a container runtime.
//
// Output contract: ROTOR_OUTPUT_FILE points at a per-container file; its
// content (at most 4 KiB, like a kubelet's termination message) becomes the
// terminated container's message. The process's stdout and stderr are kept
// in a log file next to it.
package nodeagent
