package manager

import (
	"github.com/rotor-dev/rotor/internal/kubeauth"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

// RBAC resources the admin API authorizes against. They are not served by
// the apiserver: a SubjectAccessReview asks about any group and resource,
// so RBAC rules on these names decide, as they do for pods.
const (
	APIGroup             = "rotor.dev"
	ResourceShards       = "shards"
	ResourceCacheEntries = "cacheentries"
)

// AdminRules says what each admin call asks to do: a verb on shards for
// the shard map, and list or delete on cacheentries in the request's
// namespace for the task cache. A method not listed here is refused.
func AdminRules(method string, req any) (kubeauth.Attributes, bool) {
	shards := func(verb string) (kubeauth.Attributes, bool) {
		return kubeauth.Attributes{Verb: verb, Group: APIGroup, Resource: ResourceShards}, true
	}
	switch method {
	case adminpb.Admin_GetShardMap_FullMethodName:
		return shards("get")
	case adminpb.Admin_WatchShardMap_FullMethodName:
		return shards("watch")
	case adminpb.Admin_DrainReplica_FullMethodName:
		a, _ := shards("drain")
		if r, ok := req.(*adminpb.DrainReplicaRequest); ok {
			a.Name = r.Replica // resourceNames can limit who drains which replica
		}
		return a, true
	case adminpb.Admin_Rebalance_FullMethodName:
		return shards("rebalance")
	case adminpb.Admin_ListCacheEntries_FullMethodName:
		r, ok := req.(*adminpb.ListCacheEntriesRequest)
		if !ok {
			return kubeauth.Attributes{}, false
		}
		// An empty namespace asks cluster-wide (a ClusterRole); the call
		// itself then refuses it as an invalid argument.
		return kubeauth.Attributes{Verb: "list", Group: APIGroup, Resource: ResourceCacheEntries, Namespace: r.Namespace}, true
	case adminpb.Admin_DeleteCacheEntries_FullMethodName:
		r, ok := req.(*adminpb.DeleteCacheEntriesRequest)
		if !ok {
			return kubeauth.Attributes{}, false
		}
		return kubeauth.Attributes{Verb: "delete", Group: APIGroup, Resource: ResourceCacheEntries, Namespace: r.Namespace, Name: r.Task}, true
	}
	return kubeauth.Attributes{}, false
}
