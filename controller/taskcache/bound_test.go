package taskcache

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/internal/etcdclient"
	"github.com/rotor-dev/rotor/internal/silentnet"
)

// TestSilentEtcdIsBounded: with etcd accepting connections and answering
// nothing (a replica cut off from it), every operation a round makes
// gives up after etcdclient.OpTimeout, not when the round's minute-long
// context ends, so the round keeps the time its status write needs.
func TestSilentEtcdIsBounded(t *testing.T) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{silentnet.Listen(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := NewStore(c, "/t/")
	k := Key{Namespace: "ns", Task: "t", Version: "v1", InputsHash: "h"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, op := range map[string]func() error{
		"get":     func() error { _, _, err := s.Get(ctx, k); return err },
		"put":     func() error { return s.Put(ctx, &Entry{Key: k}) },
		"reserve": func() error { _, _, err := s.Reserve(ctx, k, "o", time.Now(), time.Minute); return err },
		"release": func() error { return s.Release(ctx, k, "o") },
	} {
		start := time.Now()
		err := op()
		took := time.Since(start)
		if err == nil || took < etcdclient.OpTimeout || took > etcdclient.OpTimeout+3*time.Second {
			t.Errorf("%s on a silent etcd: %v after %s; want an error after about %s", name, err, took, etcdclient.OpTimeout)
		}
	}
}
