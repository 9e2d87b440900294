package sharding

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

func caPool(t *testing.T, env *harness.Env) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(env.CAPEM) {
		t.Fatal("sandbox CA holds no certificate")
	}
	return pool
}

// bearerToken is a gRPC per-call credential.
type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerToken) RequireTransportSecurity() bool { return true }

// TestAdminAPIAuthorization: every admin call is authenticated with the
// caller's own kubeconfig (a ServiceAccount token checked by TokenReview,
// or a client certificate of the cluster's client CA) and authorized by
// RBAC on shards.rotor.dev and, per namespace, cacheentries.rotor.dev.
// Negative cases: no credentials and a token the apiserver rejects are
// Unauthenticated; a user without the grant is PermissionDenied with the
// verb and resource named; tenant A can neither list nor delete tenant B's
// cache entries, and B's entry is still there after A tried.
func TestAdminAPIAuthorization(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 1, Sharded: true, Managers: 1})
	waitStableMap(t, env, 1)
	ctx := context.Background()
	if err := env.CreateNamespaces(ctx, "team-a", "team-b", "ops"); err != nil {
		t.Fatal(err)
	}
	token := func(ns, sa string) string { return env.ServiceAccountToken(t, ns, sa) }
	rbac := env.Kube.RbacV1()
	mustCreate := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// operator: may read and drain shards, not rebalance. The group
	// "platform" (a client certificate's O) may read them.
	mustCreate(rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "shard-operator"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"rotor.dev"}, Resources: []string{"shards"}, Verbs: []string{"get", "watch", "drain"}}}}, metav1.CreateOptions{}))
	mustCreate(rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "shard-operator"},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "shard-operator"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "operator", Namespace: "ops"},
			{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "platform"}}}, metav1.CreateOptions{}))
	// alice: tenant A's cache, nothing else.
	mustCreate(rbac.Roles("team-a").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cache-admin"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"rotor.dev"}, Resources: []string{"cacheentries"}, Verbs: []string{"list", "delete"}}}}, metav1.CreateOptions{}))
	mustCreate(rbac.RoleBindings("team-a").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "cache-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "alice", Namespace: "team-a"}}}, metav1.CreateOptions{}))

	kcOperator := env.WriteKubeconfig(t, "operator", clientcmdapi.AuthInfo{Token: token("ops", "operator")})
	kcNobody := env.WriteKubeconfig(t, "nobody", clientcmdapi.AuthInfo{Token: token("ops", "nobody")})
	kcAlice := env.WriteKubeconfig(t, "alice", clientcmdapi.AuthInfo{Token: token("team-a", "alice")})
	kcAnonymous := env.WriteKubeconfig(t, "anonymous", clientcmdapi.AuthInfo{})
	kcForged := env.WriteKubeconfig(t, "forged", clientcmdapi.AuthInfo{Token: "not-a-token"})
	cert, key, err := env.IssueClientCert("carol", "platform")
	if err != nil {
		t.Fatal(err)
	}
	kcCarol := env.WriteKubeconfig(t, "carol", clientcmdapi.AuthInfo{ClientCertificate: cert, ClientKey: key})

	// One cache entry in each tenant's namespace, written as a replica
	// writes them.
	etcd, err := env.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	store := taskcache.NewStore(etcd, "/rotor/cache/")
	for _, ns := range []string{"team-a", "team-b"} {
		e := &taskcache.Entry{Key: taskcache.Key{Namespace: ns, Task: "square", Version: "v1", Definition: strings.Repeat("d", 64), InputsHash: strings.Repeat("a", 64)},
			Source: ns + "/wf/a", CreatedAt: time.Now()}
		if err := store.Put(ctx, e); err != nil {
			t.Fatalf("seed the cache of %s: %v", ns, err)
		}
	}

	addr := env.ManagerAdmin[0]
	run := func(kubeconfig string, args ...string) (string, error) {
		t.Helper()
		args = append(args, "--manager", addr, "--tls-ca", env.CAFile(), "--kubeconfig", kubeconfig)
		cmd := exec.Command(filepath.Join(env.RepoRoot, "bin", "rotor"), args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		who, kubeconfig string
		args            []string
		ok              bool
		want            string
	}{
		{"no credentials", kcAnonymous, []string{"shards"}, false, "code = Unauthenticated desc = Unauthenticated: send a bearer token or a client certificate"},
		{"a token the apiserver rejects", kcForged, []string{"shards"}, false, "code = Unauthenticated desc = Unauthenticated: the apiserver does not accept this token"},
		{"no grant", kcNobody, []string{"shards", "drain", "rotor-propeller-0"}, false,
			`code = PermissionDenied desc = Forbidden: user "system:serviceaccount:ops:nobody" may not drain shards.rotor.dev rotor-propeller-0`},
		{"operator reads", kcOperator, []string{"shards"}, true, "rotor-propeller-0"},
		{"operator may not rebalance", kcOperator, []string{"shards", "rebalance"}, false,
			`PermissionDenied desc = Forbidden: user "system:serviceaccount:ops:operator" may not rebalance shards.rotor.dev (grant a ClusterRole with apiGroups [rotor.dev], resources [shards], verbs [rebalance])`},
		{"client certificate of group platform", kcCarol, []string{"shards"}, true, "rotor-propeller-0"},
		{"client certificate without drain", kcCarol, []string{"shards", "rebalance"}, false, `user "carol" may not rebalance shards.rotor.dev`},
		{"tenant A lists its cache", kcAlice, []string{"cache", "ls", "-n", "team-a"}, true, "team-a/wf/a"},
		{"tenant A lists B's cache", kcAlice, []string{"cache", "ls", "-n", "team-b"}, false,
			`PermissionDenied desc = Forbidden: user "system:serviceaccount:team-a:alice" may not list cacheentries.rotor.dev in namespace team-b (grant a Role in team-b`},
		{"tenant A deletes B's cache", kcAlice, []string{"cache", "rm", "square", "-n", "team-b"}, false,
			`may not delete cacheentries.rotor.dev square in namespace team-b`},
		{"the operator lists a tenant's cache", kcOperator, []string{"cache", "ls", "-n", "team-a"}, false, `may not list cacheentries.rotor.dev in namespace team-a`},
	} {
		out, err := run(tc.kubeconfig, tc.args...)
		if (err == nil) != tc.ok || !strings.Contains(out, tc.want) {
			t.Errorf("%s: rotor %s: err %v\n%s\nwant ok=%v and output containing %q", tc.who, strings.Join(tc.args, " "), err, out, tc.ok, tc.want)
		}
	}
	if got, err := store.List(ctx, "team-b", ""); err != nil || len(got) != 1 {
		t.Fatalf("team-b's cache after tenant A tried to delete it: %d entries (%v), want its 1 entry", len(got), err)
	}
	if out, err := run(kcAlice, "cache", "rm", "square", "-n", "team-a"); err != nil || !strings.Contains(out, "deleted 1 cache entries") {
		t.Fatalf("tenant A deletes its own entry: %v\n%s", err, out)
	}
	if got, err := store.List(ctx, "team-a", ""); err != nil || len(got) != 0 {
		t.Fatalf("team-a's cache after its rm: %d entries (%v), want none", len(got), err)
	}

	// The operator's drain is served (and undone by the sandbox admin).
	if out, err := run(kcOperator, "shards", "drain", "rotor-propeller-0"); err != nil || !strings.Contains(out, "replica rotor-propeller-0 draining") {
		t.Fatalf("operator drains: %v\n%s", err, out)
	}
	if out, err := run(env.Control.Kubeconfig, "shards", "rebalance"); err != nil {
		t.Fatalf("admin rebalances: %v\n%s", err, out)
	}

	// The streaming call is authorized too.
	tlsCreds := credentials.NewTLS(&tls.Config{RootCAs: caPool(t, env)})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(tlsCreds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := adminpb.NewAdminClient(conn).WatchShardMap(wctx, &adminpb.WatchShardMapRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("WatchShardMap without credentials: %v, want Unauthenticated", err)
	}
}
