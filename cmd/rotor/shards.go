package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotor-dev/rotor/manager/adminpb"
)

func shardsCmd(g *globals) *cobra.Command {
	var f adminFlags
	dial := func() (adminpb.AdminClient, func(), error) { return dialAdmin(g, f) }
	cmd := &cobra.Command{
		Use:   "shards",
		Short: "Show the shard map: partitions, owners, epochs, namespaces",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := dial()
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			m, err := c.GetShardMap(ctx, &adminpb.GetShardMapRequest{})
			if err != nil {
				return fmt.Errorf("get shard map: %w", err)
			}
			printShards(cmd.OutOrStdout(), m)
			return nil
		},
	}
	f.bind(cmd)
	var wait bool
	drain := &cobra.Command{
		Use:   "drain REPLICA [--wait]",
		Short: "Move every partition away from a replica (before a shutdown or an upgrade)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := dial()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.DrainReplica(cmd.Context(), &adminpb.DrainReplicaRequest{Replica: args[0], Wait: wait, TimeoutSeconds: 120})
			if err != nil {
				return fmt.Errorf("drain %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replica %s draining: %d partitions left\n", args[0], resp.Remaining)
			return nil
		},
	}
	drain.Flags().BoolVar(&wait, "wait", false, "return once the replica owns no partition")
	rebalance := &cobra.Command{
		Use:   "rebalance",
		Short: "Cancel drains of live replicas and replan at once",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := dial()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Rebalance(cmd.Context(), &adminpb.RebalanceRequest{})
			if err != nil {
				return fmt.Errorf("rebalance: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rebalancing: %d partitions moving\n", resp.Moving)
			return nil
		},
	}
	cmd.AddCommand(drain, rebalance)
	return cmd
}

// printShards shows runs of consecutive partitions with one owner.
func printShards(out io.Writer, m *adminpb.ShardMap) {
	fmt.Fprintf(out, "%d partitions, leader %s, revision %d\n\n", m.PartitionCount, m.Leader, m.Revision)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITIONS\tOWNER\tEPOCHS\tNAMESPACES\tMOVING TO")
	ps := m.Partitions
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1].Owner == ps[i].Owner && ps[j+1].Next == ps[i].Next {
			j++
		}
		lo, hi := ps[i].Epoch, ps[i].Epoch
		var nss []string
		for k := i; k <= j; k++ {
			lo, hi = min(lo, ps[k].Epoch), max(hi, ps[k].Epoch)
			nss = append(nss, ps[k].Namespaces...)
		}
		rng, epochs := fmt.Sprint(i), fmt.Sprint(lo)
		if j > i {
			rng = fmt.Sprintf("%d-%d", i, j)
		}
		if hi > lo {
			epochs = fmt.Sprintf("%d-%d", lo, hi)
		}
		owner := ps[i].Owner
		if owner == "" {
			owner = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rng, owner, epochs, summarize(nss), ps[i].Next)
		i = j + 1
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tPARTITIONS\tACTIVE WORKFLOWS\tDRAINING")
	for _, mb := range m.Members {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\n", mb.Name, mb.Partitions, mb.Workflows, mb.Draining)
	}
	tw.Flush()
}

func summarize(nss []string) string {
	switch {
	case len(nss) == 0:
		return "-"
	case len(nss) <= 3:
		return strings.Join(nss, ",")
	}
	return fmt.Sprintf("%s,... (%d)", strings.Join(nss[:3], ","), len(nss))
}
