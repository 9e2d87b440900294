package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

func cacheCmd(g *globals) *cobra.Command {
	var endpoints, prefix string
	cmd := &cobra.Command{Use: "cache", Short: "List or delete cached task outputs of a namespace"}
	cmd.PersistentFlags().StringVar(&endpoints, "etcd-endpoints", "", "etcd of the task cache (default: $ROTOR_ETCD_ENDPOINTS, then the rotor dev sandbox's)")
	cmd.PersistentFlags().StringVar(&prefix, "cache-prefix", "/rotor/cache/", "key prefix of the task cache")
	store := func() (*taskcache.Store, func(), error) {
		if endpoints == "" {
			endpoints = os.Getenv("ROTOR_ETCD_ENDPOINTS")
		}
		if endpoints == "" {
			// The sandbox's etcd, with its client certificate if it has one.
			if env, err := localcluster.Load(".rotor"); err == nil {
				c, err := env.EtcdClient()
				if err != nil {
					return nil, nil, err
				}
				return taskcache.NewStore(c, prefix), func() { c.Close() }, nil
			}
		}
		if endpoints == "" {
			return nil, nil, fmt.Errorf("no etcd for the task cache: pass --etcd-endpoints or set ROTOR_ETCD_ENDPOINTS")
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, nil, fmt.Errorf("connect to etcd %s: %w", endpoints, err)
		}
		return taskcache.NewStore(c, prefix), func() { c.Close() }, nil
	}
	var task string
	ls := &cobra.Command{
		Use:   "ls [--task TASK]",
		Short: "List cache entries of the namespace",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, done, err := store()
			if err != nil {
				return err
			}
			defer done()
			entries, err := s.List(cmd.Context(), g.ns(), task)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			// DEFINITION is "-" for an entry written before the task's
			// definition was part of the key: it is never read again.
			fmt.Fprintln(tw, "TASK\tVERSION\tDEFINITION\tINPUTS\tAGE\tSOURCE")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Key.Task, e.Key.Version, taskcache.Short(e.Key.Definition),
					taskcache.Short(e.Key.InputsHash), time.Since(e.CreatedAt).Round(time.Second), e.Source)
			}
			return tw.Flush()
		},
	}
	ls.Flags().StringVar(&task, "task", "", "only this task")
	rm := &cobra.Command{
		Use:   "rm TASK [INPUTS-HASH-PREFIX]",
		Short: "Delete the cache entries of a task name in the namespace, of every definition (all, or those whose input hash starts with the prefix)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := store()
			if err != nil {
				return err
			}
			defer done()
			hash := ""
			if len(args) == 2 {
				hash = args[1]
			}
			n, err := s.Delete(cmd.Context(), g.ns(), args[0], hash)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %d cache entries of task %s in %s\n", n, args[0], g.ns())
			return nil
		},
	}
	cmd.AddCommand(ls, rm)
	return cmd
}
