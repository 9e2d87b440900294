package main

import (
	"context"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/e2e/chaos"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

// mapRecorder keeps every version of the shard map the soak's etcd watch
// delivers, with when it arrived. Through an etcd outage it reads the map
// again and watches on from there.
type mapRecorder struct {
	mu   sync.Mutex
	seen []chaos.MapSeen
}

func recordMaps(ctx context.Context, c *clientv3.Client) *mapRecorder {
	r := &mapRecorder{}
	key := shardproto.Keys{Prefix: localcluster.ShardPrefix}.Map()
	go func() {
		for ctx.Err() == nil {
			gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := c.Get(gctx, key)
			cancel()
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if len(resp.Kvs) == 1 {
				r.add(resp.Kvs[0].Value)
			}
			wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for w := range c.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
				if w.Err() != nil {
					break
				}
				for _, ev := range w.Events {
					if ev.Type == clientv3.EventTypePut {
						r.add(ev.Kv.Value)
					}
				}
			}
			stop()
		}
	}()
	return r
}

func (r *mapRecorder) add(v []byte) {
	doc, err := shardproto.Decode(v)
	if err != nil {
		return
	}
	owners := make([]string, len(doc.Map))
	for i, p := range doc.Map {
		owners[i] = p.Owner
	}
	r.mu.Lock()
	r.seen = append(r.seen, chaos.MapSeen{At: time.Now(), Owners: owners})
	r.mu.Unlock()
}

func (r *mapRecorder) maps() []chaos.MapSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chaos.MapSeen(nil), r.seen...)
}

// replicaWrites reads the successful Workflow writes of replicas in the
// soak's namespaces from the control apiserver's audit log.
func replicaWrites(env *harness.Env) ([]chaos.WriteSeen, error) {
	events, err := harness.ReadAudit(env.Control.AuditLog)
	if err != nil {
		return nil, err
	}
	var out []chaos.WriteSeen
	for _, ev := range events {
		if !ev.Write() || ev.ObjectRef == nil || ev.ObjectRef.APIGroup != "rotor.dev" ||
			ev.ResponseStatus.Code < 200 || ev.ResponseStatus.Code > 299 ||
			!strings.HasPrefix(ev.User.Username, "rotor-propeller-") || !strings.HasPrefix(ev.ObjectRef.Namespace, nsPrefix) {
			continue
		}
		switch ev.Resource() {
		case "workflows", "workflows/status":
			out = append(out, chaos.WriteSeen{Replica: ev.User.Username, Namespace: ev.ObjectRef.Namespace,
				Name: ev.ObjectRef.Name, Resource: ev.Resource(), At: ev.StageTimestamp})
		}
	}
	return out, nil
}
