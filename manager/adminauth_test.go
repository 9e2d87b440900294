package manager

import (
	"testing"

	"github.com/rotor-dev/rotor/internal/kubeauth"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

// TestEveryAdminMethodHasARule: a method added to the service without a
// rule would be refused for everyone; this names it at build time instead.
func TestEveryAdminMethodHasARule(t *testing.T) {
	reqs := map[string]any{
		adminpb.Admin_GetShardMap_FullMethodName:        &adminpb.GetShardMapRequest{},
		adminpb.Admin_DrainReplica_FullMethodName:       &adminpb.DrainReplicaRequest{Replica: "r-1"},
		adminpb.Admin_Rebalance_FullMethodName:          &adminpb.RebalanceRequest{},
		adminpb.Admin_ListCacheEntries_FullMethodName:   &adminpb.ListCacheEntriesRequest{Namespace: "team-a"},
		adminpb.Admin_DeleteCacheEntries_FullMethodName: &adminpb.DeleteCacheEntriesRequest{Namespace: "team-a", Task: "square"},
	}
	want := map[string]kubeauth.Attributes{
		adminpb.Admin_GetShardMap_FullMethodName:        {Verb: "get", Group: "rotor.dev", Resource: "shards"},
		adminpb.Admin_WatchShardMap_FullMethodName:      {Verb: "watch", Group: "rotor.dev", Resource: "shards"},
		adminpb.Admin_DrainReplica_FullMethodName:       {Verb: "drain", Group: "rotor.dev", Resource: "shards", Name: "r-1"},
		adminpb.Admin_Rebalance_FullMethodName:          {Verb: "rebalance", Group: "rotor.dev", Resource: "shards"},
		adminpb.Admin_ListCacheEntries_FullMethodName:   {Verb: "list", Group: "rotor.dev", Resource: "cacheentries", Namespace: "team-a"},
		adminpb.Admin_DeleteCacheEntries_FullMethodName: {Verb: "delete", Group: "rotor.dev", Resource: "cacheentries", Namespace: "team-a", Name: "square"},
	}
	var methods []string
	for _, m := range adminpb.Admin_ServiceDesc.Methods {
		methods = append(methods, "/"+adminpb.Admin_ServiceDesc.ServiceName+"/"+m.MethodName)
	}
	for _, s := range adminpb.Admin_ServiceDesc.Streams {
		methods = append(methods, "/"+adminpb.Admin_ServiceDesc.ServiceName+"/"+s.StreamName)
	}
	if len(methods) != len(want) {
		t.Fatalf("the service has %d methods, the test knows %d: add the new one here and to AdminRules", len(methods), len(want))
	}
	for _, m := range methods {
		got, ok := AdminRules(m, reqs[m])
		if !ok || got != want[m] {
			t.Errorf("%s: %+v (ok %v), want %+v", m, got, ok, want[m])
		}
	}
	if _, ok := AdminRules("/rotor.admin.v1.Admin/Unknown", nil); ok {
		t.Error("an unknown method has a rule")
	}
}
