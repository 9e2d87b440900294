package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/shard/member"
)

func etcdClient(t *testing.T) *clientv3.Client { return env.Etcd(t) }

func keyExists(t *testing.T, c *clientv3.Client, key string) bool {
	t.Helper()
	resp, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Kvs) > 0
}

// TestMembershipLease checks membership against the real etcd: renewals
// keep the key, a clean leave removes it at once, a frozen member's key
// and validity end with its TTL, and a revoked lease is noticed.
func TestMembershipLease(t *testing.T) {
	c := etcdClient(t)
	prefix := "/test-" + t.Name() + "/members/"
	cfg := func(name string) member.Config {
		return member.Config{Prefix: prefix, Info: member.Info{Name: name}, TTL: 2 * time.Second}
	}
	ctx := context.Background()

	t.Run("renewed, then leaves cleanly", func(t *testing.T) {
		m, err := member.Join(ctx, c, cfg("a"))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(rctx) }()
		time.Sleep(3 * time.Second) // past one TTL: only renewals keep it
		if !keyExists(t, c, prefix+"a") || !m.Valid() {
			t.Fatal("member key or validity gone while renewing")
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of its context ending")
		}
		if keyExists(t, c, prefix+"a") || m.Valid() {
			t.Fatal("member key or validity still there after leaving")
		}
	})

	t.Run("frozen member expires with its TTL", func(t *testing.T) {
		m, err := member.Join(ctx, c, cfg("frozen"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for m.Valid() {
			if time.Since(start) > 5*time.Second {
				t.Fatal("the member still believes itself valid 5 s after its last renewal (TTL 2 s)")
			}
			time.Sleep(10 * time.Millisecond)
		}
		invalidAfter := time.Since(start)
		for keyExists(t, c, prefix+"frozen") {
			if time.Since(start) > 10*time.Second {
				t.Fatal("etcd still holds the member key 10 s after its last renewal (TTL 2 s)")
			}
			time.Sleep(50 * time.Millisecond)
		}
		goneAfter := time.Since(start)
		t.Logf("no renewals: stopped acting after %s, etcd removed the key after %s", invalidAfter.Round(time.Millisecond), goneAfter.Round(time.Millisecond))
		if invalidAfter < time.Second || invalidAfter > goneAfter || invalidAfter > 2*time.Second {
			t.Fatalf("the member believed itself valid for %s, etcd dropped it after %s", invalidAfter, goneAfter)
		}
	})

	t.Run("revoked lease is noticed", func(t *testing.T) {
		m, err := member.Join(ctx, c, cfg("revoked"))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		if _, err := c.Revoke(ctx, m.LeaseID()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, member.ErrLost) || m.Valid() {
				t.Fatalf("Run = %v, valid %v; want ErrLost and invalid", err, m.Valid())
			}
		case <-time.After(3 * time.Second):
			t.Fatal("revocation not noticed within a TTL")
		}
		select {
		case <-m.Lost():
		default:
			t.Fatal("Lost() not closed")
		}
	})
}
