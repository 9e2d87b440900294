// Package leader elects one rotor-manager through etcd's
// concurrency.Election and guards every write of the leader with its
// election key: a transaction that succeeds only while that key still
// exists at the revision it was created, so a deposed leader (its session
// expired while it was frozen or partitioned) cannot write, whatever it
// believes.
package leader

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrNotLeader is returned by a guarded write when leadership is gone.
var ErrNotLeader = errors.New("not the leader any more")

// Leader is a won election.
type Leader struct {
	client   *clientv3.Client
	session  *concurrency.Session
	election *concurrency.Election
	name     string
}

// Campaign blocks until name leads under prefix (or ctx ends). The session
// TTL bounds how long a dead leader blocks the next one.
func Campaign(ctx context.Context, client *clientv3.Client, prefix, name string, ttl time.Duration) (*Leader, error) {
	s, err := concurrency.NewSession(client, concurrency.WithTTL(int(ttl/time.Second)))
	if err != nil {
		return nil, fmt.Errorf("leader: new etcd session: %w", err)
	}
	e := concurrency.NewElection(s, prefix)
	if err := e.Campaign(ctx, name); err != nil {
		s.Close()
		return nil, fmt.Errorf("leader: campaign as %s: %w", name, err)
	}
	return &Leader{client: client, session: s, election: e, name: name}, nil
}

// Done is closed when the session (and so leadership) is lost.
func (l *Leader) Done() <-chan struct{} { return l.session.Done() }

// Name is the leader's name.
func (l *Leader) Name() string { return l.name }

// guard is the condition every leader write carries.
func (l *Leader) guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.election.Key()), "=", l.election.Rev())
}

// Write applies ops only while still leading.
func (l *Leader) Write(ctx context.Context, ops ...clientv3.Op) error {
	resp, err := l.client.Txn(ctx).If(l.guard()).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("leader %s: write: %w", l.name, err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}

// Resign gives leadership up, so a standby takes over at once.
func (l *Leader) Resign(ctx context.Context) error {
	err := l.election.Resign(ctx)
	l.session.Close()
	return err
}

// Current returns the name of whoever leads under prefix ("" if nobody).
func Current(ctx context.Context, client *clientv3.Client, prefix string) (string, error) {
	s, err := concurrency.NewSession(client, concurrency.WithTTL(5))
	if err != nil {
		return "", err
	}
	defer s.Close()
	resp, err := concurrency.NewElection(s, prefix).Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}
