// The etcd layout of the protocol and its one reader.

package shardproto

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keys computes the layout under one prefix (no trailing slash); see
// the package documentation.
type Keys struct{ Prefix string }

// Members is the members prefix.
func (k Keys) Members() string { return k.Prefix + "/members/" }

// Map is the shard map key.
func (k Keys) Map() string { return k.Prefix + "/shardmap" }

// Released is the prefix of release acknowledgements.
func (k Keys) Released() string { return k.Prefix + "/released/" }

// ReleasedKey is one acknowledgement.
func (k Keys) ReleasedKey(member string, partition int) string {
	return k.Released() + member + "/" + strconv.Itoa(partition)
}

// Drain is the prefix of drain requests made through the admin API.
func (k Keys) Drain() string { return k.Prefix + "/drain/" }

// DrainKey is one drain request.
func (k Keys) DrainKey(member string) string { return k.Drain() + member }

// Leader is the election prefix (concurrency.Election adds a "/").
func (k Keys) Leader() string { return k.Prefix + "/leader" }

// Capacity is the prefix of the target clusters' task-pod slots
// (package cluster/capacity).
func (k Keys) Capacity() string { return k.Prefix + "/capacity/" }

// Watched are the prefixes whose changes the leader plans on: members,
// acknowledgements and drain requests. Not the whole prefix: the task
// cache and the call journal live under it by default, and a leader that
// watched (and read) all of it replanned on every cache write and read
// every cache entry each time.
func (k Keys) Watched() []string { return []string{k.Members(), k.Released(), k.Drain()} }

// Doc is the stored shard map.
type Doc struct {
	Partitions int `json:"partitions"`
	Map        Map `json:"map"`
	// Version counts the leader's publications, across leaders (each
	// leader starts from the stored one). Release requests are stamped
	// with it (Partition.Asked).
	Version int64 `json:"version,omitempty"`
	// Leader wrote this version.
	Leader string `json:"leader,omitempty"`
}

// Load reads the shard map; a missing one is an empty map of partitions.
// A map of another partition count is an error: the count is fixed at
// install, and every replica computes a namespace's partition from it.
func Load(ctx context.Context, c *clientv3.Client, k Keys, partitions int) (*Doc, int64, error) {
	resp, err := c.Get(ctx, k.Map())
	if err != nil {
		return nil, 0, fmt.Errorf("read shard map %s: %w", k.Map(), err)
	}
	if len(resp.Kvs) == 0 {
		return &Doc{Partitions: partitions, Map: make(Map, partitions)}, resp.Header.Revision, nil
	}
	d, err := Decode(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, err
	}
	if err := d.CheckPartitions(partitions); err != nil {
		return nil, 0, err
	}
	return d, resp.Header.Revision, nil
}

// CheckPartitions fails when the map was planned for another partition
// count than the reader's.
func (d *Doc) CheckPartitions(partitions int) error {
	if d.Partitions != partitions {
		return fmt.Errorf("shard map has %d partitions, this process is configured for %d: the partition count is fixed at install, so set --partitions (chart: sharding.partitions) to %d everywhere", d.Partitions, partitions, d.Partitions)
	}
	return nil
}

// Decode parses a stored shard map.
func Decode(b []byte) (*Doc, error) {
	d := &Doc{}
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("shard map is corrupt: %w", err)
	}
	if len(d.Map) != d.Partitions {
		return nil, fmt.Errorf("shard map lists %d partitions, declares %d", len(d.Map), d.Partitions)
	}
	return d, nil
}

// MemberInfo is what a member publishes about itself.
type MemberInfo struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
	// Draining asks the manager to move every partition away.
	Draining bool `json:"draining,omitempty"`
	// Workflows is the number of active workflows in the member's shard,
	// for the autoscale signal.
	Workflows int `json:"workflows,omitempty"`
}

// EncodeAck is the stored value of a release acknowledgement.
func EncodeAck(a Ack) string {
	return strconv.FormatInt(a.Epoch, 10) + "/" + strconv.FormatInt(a.Asked, 10)
}

// ParseAck reads a release acknowledgement's key and value. Values of
// replicas older than release requests hold the epoch alone (Asked 0).
func ParseAck(k Keys, key string, value []byte) (member string, partition int, ack Ack, ok bool) {
	rest, found := strings.CutPrefix(key, k.Released())
	if !found {
		return "", 0, Ack{}, false
	}
	m, p, found := strings.Cut(rest, "/")
	if !found {
		return "", 0, Ack{}, false
	}
	pi, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, Ack{}, false
	}
	epoch, asked, _ := strings.Cut(string(value), "/")
	if ack.Epoch, err = strconv.ParseInt(epoch, 10, 64); err != nil {
		return "", 0, Ack{}, false
	}
	if asked != "" {
		if ack.Asked, err = strconv.ParseInt(asked, 10, 64); err != nil {
			return "", 0, Ack{}, false
		}
	}
	return m, pi, ack, true
}

// Snapshot is what the members have written: their infos (drain
// requests folded in), their release acknowledgements, and drain requests
// for members that are gone.
type Snapshot struct {
	Members map[string]MemberInfo
	// Acks maps member → partition → acknowledgement.
	Acks map[string]map[int]Ack
	// StaleDrains names drain requests whose member left: a restart
	// under the same name must start afresh, so the leader deletes them.
	StaleDrains []string
	// Revision is etcd's revision of the read.
	Revision int64
}

// ReadSnapshot reads the members, acknowledgements and drain requests in
// one consistent read: one transaction of a range read per prefix
// (Keys.Watched), all at one revision. It reads only those prefixes, so
// the manager's etcd role needs nothing else under the prefix.
func ReadSnapshot(ctx context.Context, c *clientv3.Client, k Keys) (*Snapshot, error) {
	var ops []clientv3.Op
	for _, p := range k.Watched() {
		ops = append(ops, clientv3.OpGet(p, clientv3.WithPrefix()))
	}
	resp, err := c.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("read membership under %s: %w", k.Prefix, err)
	}
	var kvs []*mvccpb.KeyValue
	for _, r := range resp.Responses {
		kvs = append(kvs, r.GetResponseRange().Kvs...)
	}
	s := ParseSnapshot(k, kvs)
	s.Revision = resp.Header.Revision
	return s, nil
}

// ParseSnapshot folds the keys of the layout into a snapshot; keys it
// does not know (the shard map, the election) are skipped.
func ParseSnapshot(k Keys, kvs []*mvccpb.KeyValue) *Snapshot {
	s := &Snapshot{Members: map[string]MemberInfo{}, Acks: map[string]map[int]Ack{}}
	drains := map[string]bool{}
	for _, kv := range kvs {
		key := string(kv.Key)
		switch {
		case strings.HasPrefix(key, k.Drain()):
			drains[strings.TrimPrefix(key, k.Drain())] = true
		case strings.HasPrefix(key, k.Members()):
			var info MemberInfo
			if json.Unmarshal(kv.Value, &info) == nil && info.Name != "" {
				s.Members[info.Name] = info
			}
		case strings.HasPrefix(key, k.Released()):
			if name, p, ack, ok := ParseAck(k, key, kv.Value); ok {
				if s.Acks[name] == nil {
					s.Acks[name] = map[int]Ack{}
				}
				s.Acks[name][p] = ack
			}
		}
	}
	for name := range drains {
		if info, ok := s.Members[name]; ok {
			info.Draining = true
			s.Members[name] = info
		} else {
			s.StaleDrains = append(s.StaleDrains, name)
		}
	}
	return s
}
