// Package table is the pure core of a replica: which partitions it
// reconciles now, at which epoch, which it is letting go of, and which
// release acknowledgements it owes the manager. It does no I/O and reads
// no clock; package shard wraps it in a shell that follows the shard map
// in etcd, starts and stops the watches, and writes the acknowledgements.
//
// Invariants:
//   - A partition is active only while the latest map gives it to this
//     replica without a release request, the replica's lease is valid,
//     the map has this replica's partition count, and no object of the
//     partition was seen at that epoch or a later one (fencing).
//   - A release is acknowledged only once no round of the partition is
//     in flight, and only for the request the map makes (epoch and
//     Asked), at most once per request unless writing it failed.
package table

import (
	"github.com/rotor-dev/rotor/shardproto"
)

// Table is one replica's partitions. Not safe for concurrent use: the
// shell serialises calls.
type Table struct {
	me         string
	partitions int
	parts      map[int]*part
	// fenced holds, per partition, the newest epoch seen on an object:
	// the partition stays stopped until a map gives it back higher.
	fenced map[int]int64
	// acked holds the acknowledgements handed out and not reported
	// failed, so they are written once.
	acked map[int]shardproto.Ack
	// err says why the last map cannot be followed, or nil.
	err     error
	applied bool
}

type part struct {
	epoch    int64
	stopping bool
	inflight int
}

// Grant is a partition the replica reconciles, at its epoch.
type Grant struct {
	Partition int
	Epoch     int64
}

// Release is an acknowledgement to write: the replica stopped
// reconciling Partition for the request Ack answers.
type Release struct {
	Partition int
	Ack       shardproto.Ack
}

// Actions is what one Apply asks of the shell.
type Actions struct {
	// Started: partitions reconciled from now on (new, resumed after a
	// cancelled release, or regained at a higher epoch).
	Started []Grant
	// Stopped: partitions no longer reconciled from now on (released,
	// lease invalid, or a map that cannot be followed). Rounds in flight
	// finish; Done reports when the last one has.
	Stopped []int
	// Acks: release acknowledgements to write now.
	Acks []Release
	// Err, when set, says why the map cannot be followed.
	Err error
}

// New returns the table of replica me for an installation of partitions
// partitions.
func New(me string, partitions int) *Table {
	return &Table{me: me, partitions: partitions, parts: map[int]*part{}, fenced: map[int]int64{}, acked: map[int]shardproto.Ack{}}
}
