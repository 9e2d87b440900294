// Package imageruntime tests the node agent's image runtime end to end: a
// real kube-apiserver (localcluster, control cluster only), an in-process
// OCI registry holding a test program's image, and the agent running in
// this test process, its container helper being this test binary. It
// needs root (mount namespaces, chroot), as this sandbox always has.
package imageruntime
