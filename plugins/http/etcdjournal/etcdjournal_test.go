package etcdjournal

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/internal/etcdclient"
	"github.com/rotor-dev/rotor/internal/silentnet"
	rotorhttp "github.com/rotor-dev/rotor/plugins/http"
)

// TestSilentEtcdIsBounded: a journal whose etcd answers nothing gives up
// after etcdclient.OpTimeout, so a round that got an endpoint's answer
// still has time to write its status (the 3-minute chaos soak, seed 11,
// found a call made twice when the write waited out the lease).
func TestSilentEtcdIsBounded(t *testing.T) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{silentnet.Listen(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	j := New(c, "/calls/", Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, op := range map[string]func() error{
		"lookup": func() error { _, _, err := j.Lookup(ctx, "k"); return err },
		"record": func() error { return j.Record(ctx, "k", rotorhttp.Answer{}) },
	} {
		start := time.Now()
		err := op()
		took := time.Since(start)
		if err == nil || took < etcdclient.OpTimeout || took > etcdclient.OpTimeout+3*time.Second {
			t.Errorf("%s on a silent etcd: %v after %s; want an error after about %s", name, err, took, etcdclient.OpTimeout)
		}
	}
}
