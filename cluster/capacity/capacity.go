// Package capacity keeps the task-pod slots of each target cluster in
// etcd, so that sharded replicas, each placing attempts from its own
// caches, never put more pods on a cluster than its maxTaskPods between
// them.
//
// A slot is a key PREFIX/CLUSTER/NAMESPACE/POD written when an attempt is
// placed. Reserve takes one only if, in one transaction, no key of the
// cluster changed since it counted them: two replicas racing for the last
// slot cannot both win. A slot is released when its pod ends, by the
// process that took it; slots whose process went away are collected by
// the cluster prober once their pod is no longer in flight.
package capacity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Slots is the etcd-backed slot store. Safe for concurrent use.
type Slots struct {
	client *clientv3.Client
	prefix string
	owner  string
	now    func() time.Time
}

// New returns slots under prefix (e.g. "/rotor/capacity/") taken in the
// name of owner (the replica).
func New(client *clientv3.Client, prefix, owner string) *Slots {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Slots{client: client, prefix: prefix, owner: owner, now: time.Now}
}

func (s *Slots) clusterPrefix(cluster string) string { return s.prefix + cluster + "/" }

func (s *Slots) key(cluster, pod string) string { return s.clusterPrefix(cluster) + pod }

// ErrContended says the slots of a cluster kept changing under Reserve.
var ErrContended = errors.New("capacity: slots kept changing, try again")

// Reserve takes a slot for pod ("namespace/name") on cluster if fewer than
// max are taken, and reports whether the pod holds one (taking the same
// slot twice is a no-op) and how many are taken.
func (s *Slots) Reserve(ctx context.Context, cluster, pod string, max int) (bool, int, error) {
	pre, key := s.clusterPrefix(cluster), s.key(cluster, pod)
	for try := 0; try < 8; try++ {
		// One read at one revision: how many slots are taken (a count,
		// not the keys: a cluster may have thousands) and whether this pod
		// holds one.
		read, err := s.client.Txn(ctx).Then(
			clientv3.OpGet(pre, clientv3.WithPrefix(), clientv3.WithCountOnly()),
			clientv3.OpGet(key, clientv3.WithKeysOnly()),
		).Commit()
		if err != nil {
			return false, 0, fmt.Errorf("read the slots of cluster %s: %w", cluster, err)
		}
		taken := int(read.Responses[0].GetResponseRange().Count)
		if len(read.Responses[1].GetResponseRange().Kvs) > 0 {
			return true, taken, nil
		}
		if taken >= max {
			return false, taken, nil
		}
		// Every key of the cluster must be as we counted it: a slot taken
		// meanwhile has a newer revision and fails the comparison.
		txn, err := s.client.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(pre).WithPrefix(), "<", read.Header.Revision+1),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		).Then(clientv3.OpPut(key, s.owner+" "+s.now().UTC().Format(time.RFC3339))).Commit()
		if err != nil {
			return false, 0, fmt.Errorf("take a slot of cluster %s: %w", cluster, err)
		}
		if txn.Succeeded {
			return true, taken + 1, nil
		}
	}
	return false, 0, ErrContended
}

// Release frees a pod's slot (no-op if it holds none).
func (s *Slots) Release(ctx context.Context, cluster, pod string) error {
	if _, err := s.client.Delete(ctx, s.key(cluster, pod)); err != nil {
		return fmt.Errorf("release the slot of %s on cluster %s: %w", pod, cluster, err)
	}
	return nil
}

// Collect releases the slots of cluster whose pods are not in inFlight
// and that are older than minAge (a slot is taken before its pod exists).
// It returns how many it released.
func (s *Slots) Collect(ctx context.Context, cluster string, inFlight map[string]bool, minAge time.Duration) (int, error) {
	pre := s.clusterPrefix(cluster)
	resp, err := s.client.Get(ctx, pre, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("read the slots of cluster %s: %w", cluster, err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		pod := strings.TrimPrefix(string(kv.Key), pre)
		if inFlight[pod] {
			continue
		}
		_, at, _ := strings.Cut(string(kv.Value), " ")
		taken, err := time.Parse(time.RFC3339, at)
		if err == nil && s.now().Sub(taken) < minAge {
			continue
		}
		// Only if it is still the slot we read: not one taken again since.
		txn, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(string(kv.Key))).Commit()
		if err != nil {
			return n, fmt.Errorf("collect slot %s: %w", kv.Key, err)
		}
		if txn.Succeeded {
			n++
		}
	}
	return n, nil
}
