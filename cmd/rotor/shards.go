package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

func shardsCmd() *cobra.Command {
	var addr, ca string
	dial := func() (adminpb.AdminClient, func(), error) {
		if addr == "" {
			if env, err := localcluster.Load(".rotor"); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				addrs, err := env.ManagerAdminAddrs(ctx)
				cancel()
				if err != nil {
					return nil, nil, err
				}
				if len(addrs) > 0 {
					addr = addrs[0]
				}
			}
		}
		if addr == "" {
			return nil, nil, fmt.Errorf("no manager address: pass --manager HOST:PORT (a sharded sandbox is started with rotor dev up --replicas 2 or more)")
		}
		creds := insecure.NewCredentials()
		if ca != "" {
			c, err := credentials.NewClientTLSFromFile(ca, "")
			if err != nil {
				return nil, nil, fmt.Errorf("load --tls-ca: %w", err)
			}
			creds = c
		} else if host, _, _ := net.SplitHostPort(addr); host != "localhost" && !net.ParseIP(host).IsLoopback() {
			return nil, nil, fmt.Errorf("%s is not on loopback: pass --tls-ca to talk TLS", addr)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to the manager at %s: %w", addr, err)
		}
		return adminpb.NewAdminClient(conn), func() { conn.Close() }, nil
	}
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
	cmd.PersistentFlags().StringVar(&addr, "manager", "", "admin API address of a rotor-manager (default: the sandbox's)")
	cmd.PersistentFlags().StringVar(&ca, "tls-ca", "", "CA certificate of the manager's admin TLS")
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
