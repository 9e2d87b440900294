// Package etcdjournal is the http plugin's call journal shared by every
// replica through etcd, so a replica that takes a partition over replays
// the answers its predecessor got instead of calling the endpoints again.
//
// Entries expire through etcd leases rather than a sweeper: a journal only
// matters until the round that got the answer writes it into the
// Workflow's status, seconds later or, through an outage, minutes. Leases
// are not kept alive: one lease of TTL is granted per bucket of time and
// shared by the entries written in it, so a replica that dies leaves its
// entries readable until they expire, which is exactly when they are
// needed.
package etcdjournal

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/internal/etcdclient"
	rotorhttp "github.com/rotor-dev/rotor/plugins/http"
)

// Journal implements rotorhttp.Journal in etcd under a key prefix.
type Journal struct {
	client *clientv3.Client
	prefix string
	clock  clock.PassiveClock
	ttl    time.Duration
	bucket time.Duration

	mu      sync.Mutex
	lease   clientv3.LeaseID
	granted time.Time
}

// Options are the journal's timings.
type Options struct {
	// TTL is how long an entry lives at least (default 1h).
	TTL time.Duration
	// Bucket is how long one lease serves new entries (default TTL/6); an
	// entry lives between TTL-Bucket and TTL.
	Bucket time.Duration
	Clock  clock.PassiveClock
}

// New returns a journal with keys under prefix (ending in "/").
func New(client *clientv3.Client, prefix string, o Options) *Journal {
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	if o.Bucket <= 0 || o.Bucket >= o.TTL {
		o.Bucket = o.TTL / 6
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &Journal{client: client, prefix: prefix, clock: o.Clock, ttl: o.TTL + o.Bucket, bucket: o.Bucket}
}

// Lookup implements rotorhttp.Journal.
func (j *Journal) Lookup(ctx context.Context, key string) (rotorhttp.Answer, bool, error) {
	ctx, cancel := etcdclient.Bound(ctx)
	defer cancel()
	resp, err := j.client.Get(ctx, j.prefix+key)
	if err != nil {
		return rotorhttp.Answer{}, false, fmt.Errorf("read call journal %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return rotorhttp.Answer{}, false, nil
	}
	var a rotorhttp.Answer
	if err := json.Unmarshal(resp.Kvs[0].Value, &a); err != nil {
		return rotorhttp.Answer{}, false, fmt.Errorf("call journal entry %s is corrupt (delete it with etcdctl del %s%s): %w", key, j.prefix, key, err)
	}
	return a, true, nil
}

// Record implements rotorhttp.Journal.
func (j *Journal) Record(ctx context.Context, key string, a rotorhttp.Answer) error {
	ctx, cancel := etcdclient.Bound(ctx) // the lease grant and the put together
	defer cancel()
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	lease, err := j.currentLease(ctx)
	if err != nil {
		return err
	}
	if _, err := j.client.Put(ctx, j.prefix+key, string(b), clientv3.WithLease(lease)); err != nil {
		// The lease may have gone with an etcd that lost its data, or a
		// clock jump: grant a new one next time.
		j.mu.Lock()
		if j.lease == lease {
			j.lease = 0
		}
		j.mu.Unlock()
		return fmt.Errorf("write call journal %s: %w", key, err)
	}
	return nil
}

// currentLease returns the lease of the current bucket, granting one when
// the bucket is over.
func (j *Journal) currentLease(ctx context.Context) (clientv3.LeaseID, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lease != 0 && j.clock.Since(j.granted) < j.bucket {
		return j.lease, nil
	}
	resp, err := j.client.Grant(ctx, int64(j.ttl/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant the call journal's lease: %w", err)
	}
	j.lease, j.granted = resp.ID, j.clock.Now()
	return j.lease, nil
}
