// Package shard is the replica side of sharding. A Replica follows the
// shard map the manager publishes: for every partition it owns it watches
// the Workflows of that partition's namespaces (one informer per
// namespace, so memory follows the shard), and it stops a partition the
// moment it is asked to release it, acknowledging only once no round of
// that partition is in flight. It implements propeller.Scope: rounds of
// namespaces it does not own are dropped, writes carry the partition's
// epoch, and nothing is written past the membership lease's deadline.
package shard
