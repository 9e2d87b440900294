package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// report prints the run as the tables docs/benchmarks.md keeps.
func report(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\nRotor benchmarks, %s: %d cores, %.1f GiB, %.0f s in all\n", r.Date, r.Cores, r.MemoryGiB, r.Seconds)
	fmt.Fprintf(w, "command: %s\n", r.Command)
	if r.Ceiling.Pods > 0 {
		fmt.Fprintf(w, "\n| figure | measured | reference (same run) | ratio | target |\n| --- | --- | --- | --- | --- |\n")
		for _, l := range r.Throughput {
			target := ""
			if l.Replicas == 1 {
				target = "≥ 0.7"
			}
			fmt.Fprintf(w, "| throughput, %d replica(s), %d chains of %d | %.0f nodes/s (%d nodes in %.1f s) | ceiling %.0f pods/s (%d pods in %.1f s) | %.2f | %s |\n",
				l.Replicas, l.Workflows, chainLen, l.NodesPerS, l.Nodes, l.Seconds, r.Ceiling.PodsPerSec, r.Ceiling.Pods, r.Ceiling.Seconds, l.Ratio, target)
		}
		for _, l := range r.Overhead {
			target := ""
			if l.Workflows >= 1000 {
				target = "p50 < 25 ms, p99 < 250 ms"
			}
			fmt.Fprintf(w, "| overhead, %d concurrent chains, 1 replica | p50 %.1f ms, p99 %.1f ms (%d samples) | p50s: round %.1f ms, queue wait %.1f ms, plugin call %.1f ms, kube request %.1f ms | | %s |\n",
				l.Workflows, l.OverP50ms, l.OverP99ms, l.Samples, l.RoundP50ms, l.QueueP50ms, l.PluginP50ms, l.KubeP50ms, target)
		}
	}
	if d := r.Data; d.Files > 0 {
		fmt.Fprintf(w, "\n| data path (%d files × %d MiB, %d at once) | measured | reference (same run) | ratio | target |\n| --- | --- | --- | --- | --- |\n", d.Files, d.FileMiB, d.Parallel)
		fmt.Fprintf(w, "| upload (sha256, manifest) | %.0f MB/s (%.1f s) | raw PUT %.0f MB/s (%.1f s) | %.2f | ≥ 0.8 |\n", d.Upload.MBps, d.Upload.Seconds, d.RawPut.MBps, d.RawPut.Seconds, d.Upload.MBps/d.RawPut.MBps)
		fmt.Fprintf(w, "| download (verified) | %.0f MB/s (%.1f s) | raw GET %.0f MB/s (%.1f s) | %.2f | ≥ 0.8 |\n", d.Download.MBps, d.Download.Seconds, d.RawGet.MBps, d.RawGet.Seconds, d.Download.MBps/d.RawGet.MBps)
	}
	if a := r.AgentCost; a.Runs > 0 {
		fmt.Fprintf(w, "| agent's added time per task (%d runs each, one small file in and out) | p50 %.0f ms submit → Succeeded | without data p50 %.0f ms | added %.0f ms | added p50 < 100 ms |\n", a.Runs, a.WithP50ms, a.PlainP50ms, a.AddedP50ms)
	}
	if rows := costTable(r.Cost); len(rows) > 0 {
		fmt.Fprintf(w, "\n| scaling | measured | reference (same run) | ratio |\n| --- | --- | --- | --- |\n")
		for _, row := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
	if s := r.Scale; s.One.Name != "" {
		fmt.Fprintf(w, "\n| replicas (%d workflows, %d namespaces, %d partitions) | live heap MiB | RSS MiB |\n| --- | --- | --- |\n", s.Workflows, s.Namespaces, s.Partitions)
		for _, m := range s.Four {
			fmt.Fprintf(w, "| %s of 4 | %.1f (%.0f %%) | %.1f (%.0f %%) |\n", m.Name, m.LiveMiB, 100*m.LiveMiB/s.One.LiveMiB, m.RSSMiB, 100*m.RSSMiB/s.One.RSSMiB)
		}
		fmt.Fprintf(w, "| one replica (reference) | %.1f | %.1f |\n", s.One.LiveMiB, s.One.RSSMiB)
		fmt.Fprintf(w, "| each of 4 / one, mean (target ≤ 35 %%) | %.0f %% (max %.0f %%) | %.0f %% (max %.0f %%) |\n", 100*s.LiveRatio, 100*s.MaxLive, 100*s.RSSRatio, 100*s.MaxRSS)
	}
	if f := r.Failover; f.LeaseTTL > 0 {
		fmt.Fprintf(w, "\n| failover | measured | reference |\n| --- | --- | --- |\n")
		fmt.Fprintf(w, "| replica SIGKILL → its partitions acquired by others | %.2f s | lease TTL %.0f s |\n", f.KillAcquired, f.LeaseTTL)
		fmt.Fprintf(w, "| replica SIGKILL → first / last busy partition written by a new owner (%d partitions) | %.2f s / %.2f s | lease TTL %.0f s |\n", f.KillPartitions, f.KillFirstWrite, f.KillLastWrite, f.LeaseTTL)
		fmt.Fprintf(w, "| graceful handoff (SIGTERM) pause per partition, %d partitions | p50 %.2f s, max %.2f s (manager's metric: mean %.2f s) | drain %.2f s in all |\n", f.HandoffParts, f.HandoffP50, f.HandoffMax, f.HandoffMetricMean, f.DrainTotal)
		fmt.Fprintf(w, "| target apiserver killed → first re-placed pod Running | %.2f s | grace period %.0f s |\n", f.ClusterLoss, f.Grace)
		for _, e := range f.Errors {
			fmt.Fprintf(w, "failover error: %s\n", e)
		}
	}
	if p := r.Protocol; p.Report != nil {
		pr := p.Report
		fmt.Fprintf(w, "\n| shard protocol, %d members, %d partitions, TTL %.0f s | measured | reference (same run) | target |\n| --- | --- | --- | --- |\n", p.Members, p.Partitions, p.TTLSeconds)
		fmt.Fprintf(w, "| manager plan time per step (%d steps) | p50 %s, p99 %s, max %s | read p99 %s, publish p99 %s; map %d bytes | p99 < 100 ms |\n",
			pr.Plan.N, ms(pr.Plan.P50), ms(pr.Plan.P99), ms(pr.Plan.Max), ms(pr.Read.P99), ms(pr.Publish.P99), pr.MapBytes)
		fmt.Fprintf(w, "| partitions moved per join (%d joins) | ×%.3f the minimum | ×%.3f the fair share P/N | within 3 %% |\n", len(pr.Joins), p.JoinToMinimum, p.JoinToFair)
		fmt.Fprintf(w, "| partitions moved per leave (%d leaves) | ×%.3f the minimum | ×%.3f the fair share P/N | within 3 %% |\n", len(pr.Leaves), p.LeaveToMinimum, p.LeaveToFair)
		fmt.Fprintf(w, "| %d membership changes over the churn, then settled | %s | | |\n", pr.ChurnEvents, ms(pr.ChurnSettle))
		fmt.Fprintf(w, "| burst of %d changes (half crashes, half joins) → settled map | %s | 2 × TTL = %.0f s | < 2 × TTL |\n", pr.BurstChanges, ms(pr.BurstSettle), 2*p.TTLSeconds)
		fmt.Fprintf(w, "| initial %d joins → settled map | %s | | |\n", p.Members, ms(pr.JoinSettle))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
