// Package manager is the shard manager: the elected leader watches the
// replicas' membership and release acknowledgements in etcd, computes the
// ring's desired assignment, steps the shard map through the handoff rules
// and publishes it with writes guarded by its election key.
package manager
