// Package member keeps a replica in the membership: an etcd lease with a
// key under the members prefix, renewed every third of its TTL, and a
// deadline (package lease) after which the replica must stop acting even
// if it cannot reach etcd to learn that its lease is gone.
package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/shard/lease"
	"github.com/rotor-dev/rotor/shardproto"
)

// ErrLost is returned by Run when the lease is gone: the replica must stop
// reconciling everything and join again with a new session.
var ErrLost = errors.New("membership lease lost")

// Info is what a member publishes about itself.
type Info = shardproto.MemberInfo

// Member is one replica's membership. Run keeps it; Valid says whether the
// replica may act now.
type Member struct {
	client   *clientv3.Client
	key      string
	info     Info
	ttl      time.Duration
	clock    clock.WithTicker
	log      *slog.Logger
	validity *lease.Validity
	id       clientv3.LeaseID
	lost     chan struct{}

	mu sync.Mutex // guards info
}

// Config configures Join.
type Config struct {
	// Prefix is the members prefix, e.g. "/rotor/members/".
	Prefix string
	Info   Info
	// TTL of the lease (production 10s, tests 2-3s).
	TTL time.Duration
	// Margin is subtracted from every deadline (default TTL/10).
	Margin time.Duration
	Clock  clock.WithTicker
	Logger *slog.Logger
}

// Join grants a lease and publishes the member key under it.
func Join(ctx context.Context, client *clientv3.Client, cfg Config) (*Member, error) {
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("member: lease TTL %s is under etcd's minimum of 1s", cfg.TTL)
	}
	if cfg.Margin == 0 {
		cfg.Margin = cfg.TTL / 10
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Info.Weight <= 0 {
		cfg.Info.Weight = 1
	}
	m := &Member{
		client: client, key: cfg.Prefix + cfg.Info.Name, info: cfg.Info, ttl: cfg.TTL, clock: cfg.Clock,
		log: cfg.Logger.With("member", cfg.Info.Name), validity: lease.NewValidity(cfg.Margin), lost: make(chan struct{}),
	}
	sent := m.clock.Now()
	g, err := client.Grant(ctx, int64(cfg.TTL/time.Second))
	if err != nil {
		return nil, fmt.Errorf("member %s: grant lease: %w", cfg.Info.Name, err)
	}
	m.id = clientv3.LeaseID(g.ID)
	if err := m.publish(ctx); err != nil {
		return nil, err
	}
	m.validity.Renewed(sent, time.Duration(g.TTL)*time.Second)
	return m, nil
}

func (m *Member) publish(ctx context.Context) error {
	m.mu.Lock()
	b, _ := json.Marshal(m.info)
	m.mu.Unlock()
	// Only under our own live lease: a member key never outlives its lease.
	if _, err := m.client.Put(ctx, m.key, string(b), clientv3.WithLease(m.id)); err != nil {
		return fmt.Errorf("member %s: publish %s: %w", m.info.Name, m.key, err)
	}
	return nil
}

// LeaseID is the member's lease, for keys that must die with it (release
// acknowledgements).
func (m *Member) LeaseID() clientv3.LeaseID { return m.id }

// Valid reports whether the replica may act now.
func (m *Member) Valid() bool { return m.validity.Valid(m.clock.Now()) }

// Lost is closed when the lease is known to be gone.
func (m *Member) Lost() <-chan struct{} { return m.lost }

// SetDraining republishes the member asking for (or cancelling) a drain.
func (m *Member) SetDraining(ctx context.Context, draining bool) error {
	m.mu.Lock()
	m.info.Draining = draining
	m.mu.Unlock()
	return m.publish(ctx)
}

// SetLoad republishes the member with its current load, if it changed.
func (m *Member) SetLoad(ctx context.Context, workflows int) error {
	m.mu.Lock()
	same := m.info.Workflows == workflows
	m.info.Workflows = workflows
	m.mu.Unlock()
	if same {
		return nil
	}
	return m.publish(ctx)
}

// Run renews the lease every TTL/3 until ctx ends (then it revokes the
// lease: a clean leave hands partitions over at once) or the lease is lost
// (then it returns ErrLost). A renewal that fails on the network is
// retried; the deadline, not the error, decides when to stop acting.
func (m *Member) Run(ctx context.Context) error {
	t := m.clock.NewTicker(m.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = m.client.Revoke(rctx, m.id)
			cancel()
			m.markLost()
			return ctx.Err()
		case <-t.C():
		}
		if err := m.RenewOnce(ctx); err != nil {
			return err
		}
	}
}

// RenewOnce sends one keepalive. It returns ErrLost once the lease is
// gone (or the deadline passed without a renewal); other failures are
// logged and left to the next renewal.
func (m *Member) RenewOnce(ctx context.Context) error {
	sent := m.clock.Now()
	rctx, cancel := context.WithTimeout(ctx, m.ttl/3)
	resp, err := m.client.KeepAliveOnce(rctx, m.id)
	cancel()
	switch {
	case err == nil && resp.TTL > 0:
		m.validity.Renewed(sent, time.Duration(resp.TTL)*time.Second)
		return nil
	case isLeaseGone(err), err == nil:
		m.log.Error("membership lease lost: stopping all reconciling", "lease", int64(m.id))
		m.markLost()
		return ErrLost
	}
	m.log.Warn("membership renewal failed, will retry", "err", err, "validFor", m.validity.Remaining(m.clock.Now()))
	if !m.Valid() {
		m.markLost()
		return ErrLost
	}
	return nil
}

func (m *Member) markLost() {
	m.validity.Lost()
	select {
	case <-m.lost:
	default:
		close(m.lost)
	}
}

func isLeaseGone(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound)
}
