package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/e2e/protosim"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// Protocol is the shard protocol at scale: lightweight members with real
// leases and acknowledgements on a real etcd, the real manager.
type Protocol struct {
	Members    int              `json:"members"`
	Partitions int              `json:"partitions"`
	TTLSeconds float64          `json:"ttlSeconds"`
	Report     *protosim.Report `json:"report"`
	// Ratios: mean moved / minimum and moved / fair share, per join and
	// per leave.
	JoinToMinimum, JoinToFair   float64
	LeaveToMinimum, LeaveToFair float64
}

// protocol runs protosim's scenario: 1,000 members, 4,096 partitions,
// TTL 10 s, 10 single joins and leaves, 5 % churn per minute for two
// minutes, then a 10 % burst of crashes and joins.
func protocol(ctx context.Context, dir string, o options, res *Result) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	env, err := localcluster.StartEtcd(ctx, localcluster.Options{Dir: filepath.Join(dir, "protocol"), BinDir: filepath.Join(root, "bin")})
	if err != nil {
		return err
	}
	defer env.Stop()
	etcd, err := env.EtcdClient()
	if err != nil {
		return err
	}
	defer etcd.Close()
	const ttl = 10 * time.Second
	p := &res.Protocol
	p.Members, p.Partitions, p.TTLSeconds = o.protoMembers, o.protoPartitions, ttl.Seconds()
	sim, err := protosim.Start(ctx, protosim.Config{Etcd: etcd, Prefix: "/bench-protocol", Partitions: p.Partitions, TTL: ttl,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer sim.Stop()
	r, err := protosim.Run(ctx, sim, protosim.Scenario{Members: p.Members, Moves: 10, ChurnPerMinute: 0.05, ChurnFor: o.protoChurn, Burst: 0.1, Seed: 1},
		func(f string, a ...any) { say(f, a...) })
	if err != nil {
		return err
	}
	p.Report = r
	p.JoinToFair, p.JoinToMinimum = protosim.MeanRatio(r.Joins)
	p.LeaveToFair, p.LeaveToMinimum = protosim.MeanRatio(r.Leaves)
	return nil
}
