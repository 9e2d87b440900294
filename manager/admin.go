package manager

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/manager/adminpb"
	"github.com/rotor-dev/rotor/shardproto"
)

// Admin serves the admin API from etcd, so any manager instance answers.
type Admin struct {
	adminpb.UnimplementedAdminServer
	client     *clientv3.Client
	keys       shardproto.Keys
	partitions int
	// Namespaces, if set, lists the control cluster's namespaces, to show
	// which ones each partition holds.
	Namespaces func() []string
	// Clock times drain waits (default the real clock).
	Clock clock.WithTicker
	// Cache, if set, is the task cache ListCacheEntries and
	// DeleteCacheEntries read and delete.
	Cache *taskcache.Store
}

// NewAdmin returns the admin API over the layout under prefix.
func NewAdmin(client *clientv3.Client, prefix string, partitions int) *Admin {
	return &Admin{client: client, keys: shardproto.Keys{Prefix: prefix}, partitions: partitions, Clock: clock.RealClock{}}
}

// GetShardMap implements adminpb.AdminServer.
func (a *Admin) GetShardMap(ctx context.Context, _ *adminpb.GetShardMapRequest) (*adminpb.ShardMap, error) {
	doc, rev, err := shardproto.Load(ctx, a.client, a.keys, a.partitions)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return a.render(ctx, doc, rev)
}

func (a *Admin) render(ctx context.Context, doc *shardproto.Doc, rev int64) (*adminpb.ShardMap, error) {
	snap, err := shardproto.ReadSnapshot(ctx, a.client, a.keys)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	infos := snap.Members
	nsByPart := map[int][]string{}
	if a.Namespaces != nil {
		for _, ns := range a.Namespaces() {
			p := shardproto.PartitionOf(ns, a.partitions)
			nsByPart[p] = append(nsByPart[p], ns)
		}
	}
	out := &adminpb.ShardMap{PartitionCount: int32(doc.Partitions), Leader: doc.Leader, Revision: rev}
	counts := map[string]int32{}
	for i, p := range doc.Map {
		sort.Strings(nsByPart[i])
		out.Partitions = append(out.Partitions, &adminpb.Partition{Index: int32(i), Owner: p.Owner, Epoch: p.Epoch, Next: p.Next, Namespaces: nsByPart[i]})
		counts[p.Owner]++
	}
	names := make([]string, 0, len(infos))
	for n := range infos {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		info := infos[n]
		out.Members = append(out.Members, &adminpb.Member{Name: n, Weight: int32(info.Weight), Draining: info.Draining,
			Partitions: counts[n], Workflows: int32(info.Workflows)})
	}
	return out, nil
}

// WatchShardMap implements adminpb.AdminServer.
func (a *Admin) WatchShardMap(_ *adminpb.WatchShardMapRequest, stream adminpb.Admin_WatchShardMapServer) error {
	ctx := stream.Context()
	doc, rev, err := shardproto.Load(ctx, a.client, a.keys, a.partitions)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	m, err := a.render(ctx, doc, rev)
	if err != nil {
		return err
	}
	if err := stream.Send(m); err != nil {
		return err
	}
	for w := range a.client.Watch(ctx, a.keys.Map(), clientv3.WithRev(rev+1)) {
		if err := w.Err(); err != nil {
			return status.Error(codes.Unavailable, err.Error())
		}
		for _, ev := range w.Events {
			doc, err := shardproto.Decode(ev.Kv.Value)
			if err != nil {
				continue
			}
			m, err := a.render(ctx, doc, ev.Kv.ModRevision)
			if err != nil {
				return err
			}
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// DrainReplica implements adminpb.AdminServer.
func (a *Admin) DrainReplica(ctx context.Context, req *adminpb.DrainReplicaRequest) (*adminpb.DrainReplicaResponse, error) {
	if req.Replica == "" {
		return nil, status.Error(codes.InvalidArgument, "replica is required")
	}
	resp, err := a.client.Get(ctx, a.keys.Members()+req.Replica)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if len(resp.Kvs) == 0 {
		return nil, status.Errorf(codes.NotFound, "no live replica %q: see rotor shards for the members", req.Replica)
	}
	if _, err := a.client.Put(ctx, a.keys.DrainKey(req.Replica), a.Clock.Now().UTC().Format(time.RFC3339)); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := a.Clock.Now().Add(timeout)
	for {
		left, err := a.owned(ctx, req.Replica)
		if err != nil {
			return nil, err
		}
		if !req.Wait || left == 0 {
			return &adminpb.DrainReplicaResponse{Remaining: int32(left)}, nil
		}
		if a.Clock.Now().After(deadline) {
			return nil, status.Errorf(codes.DeadlineExceeded, "replica %s still owns %d partitions after %s", req.Replica, left, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-a.Clock.After(200 * time.Millisecond):
		}
	}
}

func (a *Admin) owned(ctx context.Context, replica string) (int, error) {
	doc, _, err := shardproto.Load(ctx, a.client, a.keys, a.partitions)
	if err != nil {
		return 0, status.Error(codes.Unavailable, err.Error())
	}
	n := 0
	for _, p := range doc.Map {
		if p.Owner == replica {
			n++
		}
	}
	return n, nil
}

// Rebalance implements adminpb.AdminServer: drain requests are dropped,
// so every live replica takes its share again.
func (a *Admin) Rebalance(ctx context.Context, _ *adminpb.RebalanceRequest) (*adminpb.RebalanceResponse, error) {
	if _, err := a.client.Delete(ctx, a.keys.Drain(), clientv3.WithPrefix()); err != nil {
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("clear drain requests: %v", err))
	}
	select { // let the leader replan
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.Clock.After(500 * time.Millisecond):
	}
	doc, _, err := shardproto.Load(ctx, a.client, a.keys, a.partitions)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &adminpb.RebalanceResponse{Moving: int32(doc.Map.Moving())}, nil
}

// ListCacheEntries implements adminpb.AdminServer.
func (a *Admin) ListCacheEntries(ctx context.Context, req *adminpb.ListCacheEntriesRequest) (*adminpb.ListCacheEntriesResponse, error) {
	if err := a.cacheRequest(req.Namespace); err != nil {
		return nil, err
	}
	entries, err := a.Cache.List(ctx, req.Namespace, req.Task)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	out := &adminpb.ListCacheEntriesResponse{}
	for _, e := range entries {
		out.Entries = append(out.Entries, &adminpb.CacheEntry{Task: e.Key.Task, Version: e.Key.Version, Definition: e.Key.Definition,
			InputsHash: e.Key.InputsHash, Source: e.Source, CreatedUnixMillis: e.CreatedAt.UnixMilli()})
	}
	return out, nil
}

// DeleteCacheEntries implements adminpb.AdminServer.
func (a *Admin) DeleteCacheEntries(ctx context.Context, req *adminpb.DeleteCacheEntriesRequest) (*adminpb.DeleteCacheEntriesResponse, error) {
	if err := a.cacheRequest(req.Namespace); err != nil {
		return nil, err
	}
	if req.Task == "" {
		return nil, status.Error(codes.InvalidArgument, "task is required: name the task whose entries to delete")
	}
	n, err := a.Cache.Delete(ctx, req.Namespace, req.Task, req.InputsHashPrefix)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &adminpb.DeleteCacheEntriesResponse{Deleted: int32(n)}, nil
}

func (a *Admin) cacheRequest(namespace string) error {
	if a.Cache == nil {
		return status.Error(codes.FailedPrecondition, "this manager serves no task cache: start it with --cache-prefix (the replicas' own)")
	}
	if namespace == "" || strings.Contains(namespace, "/") {
		return status.Errorf(codes.InvalidArgument, "namespace %q: give the namespace whose cache entries to use", namespace)
	}
	return nil
}
