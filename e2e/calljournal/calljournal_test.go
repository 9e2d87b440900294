// Package calljournal tests the http plugin's shared call journal on a
// real etcd: what one replica records, another replays, and the entries
// expire through leases that nobody keeps alive.
package calljournal

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/plugins"
	rotorhttp "github.com/rotor-dev/rotor/plugins/http"
	"github.com/rotor-dev/rotor/plugins/http/etcdjournal"
)

func TestSharedJournalOnEtcd(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := localcluster.StartEtcd(ctx, localcluster.Options{Dir: t.TempDir(), BinDir: filepath.Join(root, "bin")})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	a, err := env.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := env.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	clk := clocktesting.NewFakeClock(time.Now())
	opts := etcdjournal.Options{TTL: 60 * time.Second, Bucket: 10 * time.Second, Clock: clk}
	ja, jb := etcdjournal.New(a, "/rotor/calls/", opts), etcdjournal.New(b, "/rotor/calls/", opts)
	want := rotorhttp.Answer{Phase: plugins.PhaseSucceeded, Outputs: []byte(`{"v":3}`)}
	if err := ja.Record(ctx, "uid/add/1", want); err != nil {
		t.Fatal(err)
	}
	// Replica b, which took the partition over, finds a's answer.
	got, ok, err := jb.Lookup(ctx, "uid/add/1")
	if err != nil || !ok || got.Phase != want.Phase || string(got.Outputs) != string(want.Outputs) {
		t.Fatalf("lookup from another client = %+v %v %v; want %+v", got, ok, err, want)
	}
	if _, ok, err := jb.Lookup(ctx, "uid/add/2"); ok || err != nil {
		t.Fatalf("an unrecorded key: found %v, err %v", ok, err)
	}

	// Entries of one bucket share a lease of TTL+Bucket; the next bucket
	// gets a new one.
	lease := func(key string) (clientv3.LeaseID, int64) {
		t.Helper()
		r, err := a.Get(ctx, "/rotor/calls/"+key)
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("get %s: %v, %d keys", key, err, len(r.Kvs))
		}
		id := clientv3.LeaseID(r.Kvs[0].Lease)
		ttl, err := a.TimeToLive(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return id, ttl.GrantedTTL
	}
	_ = ja.Record(ctx, "uid/add/3", want)
	l1, granted := lease("uid/add/1")
	if l3, _ := lease("uid/add/3"); l1 == 0 || l3 != l1 || granted != 70 {
		t.Fatalf("leases %x and %x granted %d s; want one shared lease of 70 s", l1, l3, granted)
	}
	clk.Step(11 * time.Second)
	_ = ja.Record(ctx, "uid/add/4", want)
	if l4, _ := lease("uid/add/4"); l4 == l1 {
		t.Fatal("a new bucket must grant a new lease")
	}

	// Nobody keeps the leases alive: revoking one (as its expiry would)
	// drops its entries, and a lost lease is replaced on the next write.
	if _, err := a.Revoke(ctx, l1); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := jb.Lookup(ctx, "uid/add/1"); ok {
		t.Fatal("an entry outlived its lease")
	}
	jc := etcdjournal.New(a, "/rotor/calls/", opts)
	_ = jc.Record(ctx, "uid/x/1", want) // jc's lease is l5
	l5, _ := lease("uid/x/1")
	if _, err := a.Revoke(ctx, l5); err != nil {
		t.Fatal(err)
	}
	if err := jc.Record(ctx, "uid/x/2", want); err == nil {
		t.Fatal("a write on a revoked lease must fail")
	}
	if err := jc.Record(ctx, "uid/x/3", want); err != nil {
		t.Fatalf("the write after a lost lease must grant a new one: %v", err)
	}
}
