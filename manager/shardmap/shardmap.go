// Package shardmap is the etcd layout shared by the manager and the
// replicas:
//
//	PREFIX/members/NAME         member.Info (JSON), under the member's lease
//	PREFIX/shardmap             Doc (JSON), written only by the leader
//	PREFIX/released/NAME/P      epoch a member released partition P at,
//	                            under the member's lease
//	PREFIX/drain/NAME           a drain request for a member (admin API)
//	PREFIX/leader               the manager election
package shardmap

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/manager/handoff"
)

// Keys computes the layout under one prefix (no trailing slash).
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

// Leader is the election prefix.
func (k Keys) Leader() string { return k.Prefix + "/leader" }

// Doc is the stored shard map.
type Doc struct {
	Partitions int         `json:"partitions"`
	Map        handoff.Map `json:"map"`
	// Leader wrote this version.
	Leader string `json:"leader,omitempty"`
}

// Load reads the shard map; a missing one is an empty map of partitions.
func Load(ctx context.Context, c *clientv3.Client, k Keys, partitions int) (*Doc, int64, error) {
	resp, err := c.Get(ctx, k.Map())
	if err != nil {
		return nil, 0, fmt.Errorf("read shard map %s: %w", k.Map(), err)
	}
	if len(resp.Kvs) == 0 {
		return &Doc{Partitions: partitions, Map: make(handoff.Map, partitions)}, resp.Header.Revision, nil
	}
	d, err := Decode(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, err
	}
	if d.Partitions != partitions {
		return nil, 0, fmt.Errorf("shard map has %d partitions, this manager is configured for %d: the partition count is fixed at install", d.Partitions, partitions)
	}
	return d, resp.Header.Revision, nil
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

// ParseReleased splits a release acknowledgement key and value.
func ParseReleased(k Keys, key string, value []byte) (member string, partition int, epoch int64, ok bool) {
	rest, found := strings.CutPrefix(key, k.Released())
	if !found {
		return "", 0, 0, false
	}
	m, p, found := strings.Cut(rest, "/")
	if !found {
		return "", 0, 0, false
	}
	pi, err1 := strconv.Atoi(p)
	ep, err2 := strconv.ParseInt(string(value), 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return m, pi, ep, true
}
