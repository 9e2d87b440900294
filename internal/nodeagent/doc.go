// Package nodeagent is the node runtime of Rotor's development sandbox: a
// tiny kubelet stand-in that registers a Node and runs every pod bound to
// it. It has two modes.
//
// # Process runtime (default)
//
// Each container's command and args run as a local process, with the
// container's env, ignoring its image. It gives no isolation, no resource
// limits, no images, networking or probes but a sidecar's exec
// startupProbe: a task runs with the agent's own user and filesystem. Its
// one job is to let the sandbox compute real results without a container
// runtime; target clusters' task pods use it.
//
// Init containers run in order before the main containers; a native
// sidecar (an init container with restartPolicy Always) is started in its
// turn, counts as started once its exec postStart hook has returned and
// its exec startupProbe passes (the next container waits; a failed hook,
// or a probe that fails failureThreshold times, fails the pod, reason
// SidecarNotStarted, where a kubelet would keep restarting it), is restarted if it exits while the main containers run, and once
// they have exited gets SIGTERM, in reverse order, then SIGKILL after the
// pod's grace period; its exit does not decide the pod's phase. emptyDir
// volumes are directories under the pod's; a container that mounts one
// runs through the nsexec helper in its own mount namespace with the
// directory bound at the mount path over the node's filesystem (a
// missing mount point is created on the node, empty), so the data
// agent's init container, sidecar and the task share /rotor per pod.
//
// Output contract: ROTOR_OUTPUT_FILE points at a per-container file; its
// content (at most 4 KiB, like a kubelet's termination message) becomes the
// terminated container's message. The process's stdout and stderr are kept
// in a log file next to it. Deleting a pod kills its processes at once
// (task pods are deleted with the default grace; waiting would slow every
// abort), and pods found running after an agent restart are failed.
//
// # Image runtime (Config.Image, --pull-images)
//
// Pods run from their OCI images as a kubelet would run them, so the
// sandbox can run Rotor's own chart (in-cluster config, the image, RBAC
// exercised for real). The pieces, each its own package:
//
//   - image: pull with go-containerregistry (plain HTTP for loopback and
//     --insecure-registries), pick linux/GOARCH from an index, unpack
//     layers (whiteouts, links, modes, ownership; no escaping the root)
//     into a cache keyed by digest, shared by pods; imagePullPolicy
//     honoured. Failures show as ErrImagePull then ImagePullBackOff.
//   - container: the kubelet's rules for argv (command/args versus
//     Entrypoint/Cmd), env ($(VAR), fieldRef, secretKeyRef,
//     configMapKeyRef, resourceFieldRef, envFrom) and identity
//     (runAsUser/runAsGroup, the image's User, runAsNonRoot).
//   - volume: projected (serviceAccountToken from the TokenRequest API,
//     bound to the pod and rewritten at 80% of its life; configMap;
//     secret; downwardAPI), secret, configMap, downwardAPI, emptyDir and
//     hostPath, as files under the pod's directory.
//   - nsexec: each container runs through this binary re-executed in a new
//     mount and UTS namespace: the image root (read-only bind, or an
//     overlay with a tmpfs upper layer when writable), volumes bound at
//     their mount paths, a minimal /dev, /proc, /etc/hosts, then chroot,
//     setgroups/setgid/setuid and exec of the entrypoint.
//   - podip: every pod shares the node's network and gets its own
//     127.x address (--pod-cidr) to bind to.
//   - probe: startup, readiness and liveness (httpGet, tcpSocket, grpc)
//     with a pure threshold core on an injected clock.
//   - backoff, podstatus: the kubelet's restart back-off and its pod phase
//     and condition rules, pure.
//
// Each pod is one imagePod goroutine tree: one goroutine per container
// (pull, start, supervise, restart), one status writer that writes the
// pod's status only when it changed. A deleted pod's containers get
// SIGTERM, then SIGKILL after the grace period, then the pod is deleted
// with grace 0 and a UID precondition. When the agent stops, containers
// are stopped the same way (grace capped by ShutdownGrace) and statuses
// are left alone; the next agent on the node starts pods again under
// restartPolicy Always/OnFailure (restartCount+1) and fails them under
// Never.
//
// Both modes keep each container's stdout and stderr in
// <work-dir>/<namespace>/<pod>-<uid8>/<container>/log.
package nodeagent
