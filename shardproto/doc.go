// Package shardproto is the shard protocol both sides share: the shard
// manager (package manager) that assigns partitions, and the replicas
// (package shard) that follow the assignment. Neither side imports the
// other; both import this package.
//
// It has three parts, all pure except the etcd reader:
//
//   - The ring (ring.go): consistent hashing with bounded loads
//     (Mirrokni, Thorup and Zadimoghaddam, 2018). Each member owns points
//     on a hash ring in proportion to its weight; a partition goes to the
//     first member clockwise from its own hash that still has room, where
//     room is ceil(LoadFactor × P × weight / total weight). The same members
//     and configuration always give the same assignment, whatever order the
//     members are listed in. Adding the (N+1)-th member moves about P/(N+1)
//     partitions; the load bound caps how far any member can drift above its
//     share. A namespace's partition is hash(namespace) mod P and never
//     changes for an installation.
//
//   - The handoff rules (handoff.go): given the current shard map, the live
//     members, the ring's desired assignment and the release
//     acknowledgements, Step computes the next shard map. Invariants (checked
//     by the tests, relied on by the replicas):
//
//   - A partition has at most one owner, and only the owner reconciles it.
//
//   - The epoch of a partition grows by one every time its owner changes,
//     and never otherwise; writers stamp it on every status write, so a
//     higher epoch on an object proves a newer owner.
//
//   - A partition moves away from a live owner only after that owner
//     acknowledged this release request (its epoch and the map version
//     that asked); from a dead owner (lease gone) it moves at once. An
//     acknowledgement of an earlier, cancelled request never counts.
//
//   - The etcd layout (layout.go), under one prefix:
//
//     PREFIX/members/NAME     MemberInfo (JSON), under the member's lease
//     PREFIX/shardmap         Doc (JSON), written only by the leader
//     PREFIX/released/NAME/P  Ack: the epoch (and request) a member
//     released partition P at, under its lease
//     PREFIX/drain/NAME       a drain request for a member (admin API)
//     PREFIX/leader/          the manager election
//     PREFIX/capacity/C/NS/POD a task-pod slot on cluster C (cluster/capacity)
//
//     ReadSnapshot is the one reader of members, acknowledgements and drain
//     requests; Load and Decode the one reader of the shard map.
package shardproto
