// Package container holds the kubelet's rules for turning a pod's
// container spec plus its image's config into what a process is started
// with: argv (command/args versus the image's Entrypoint/Cmd), environment
// (image env, then envFrom, then env with $(VAR) expansion, field, secret
// and config map references) and identity (runAsUser/runAsGroup, the
// image's User, runAsNonRoot). Everything here is pure but for the lookups
// the caller injects.
package container
