package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/internal/etcdclient"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/adminpb"
)

// cacheBackend lists and deletes a namespace's cache entries: through a
// manager's admin API (authorized per namespace with the user's own
// kubeconfig), or, for the platform team holding the etcd client
// certificate, in etcd directly.
type cacheBackend interface {
	List(ctx context.Context, namespace, task string) ([]*taskcache.Entry, error)
	Delete(ctx context.Context, namespace, task, hashPrefix string) (int, error)
}

func cacheCmd(g *globals) *cobra.Command {
	var prefix string
	var ef etcdclient.Flags
	var admin adminFlags
	cmd := &cobra.Command{Use: "cache", Short: "List or delete cached task outputs of a namespace",
		Long: "List or delete cached task outputs of a namespace, through a rotor-manager's admin API as the kubeconfig's user " +
			"(RBAC: list or delete on cacheentries.rotor.dev in the namespace). --etcd-endpoints reads etcd directly instead, " +
			"with the etcd client certificate: every tenant's entries, for the platform team only."}
	admin.bind(cmd)
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	ef.Bind(fs, "read etcd directly instead of the admin API (default: $ROTOR_ETCD_ENDPOINTS; an unsharded sandbox, which has no manager, uses its own etcd)")
	cmd.PersistentFlags().AddGoFlagSet(fs)
	cmd.PersistentFlags().StringVar(&prefix, "cache-prefix", "/rotor/cache/", "key prefix of the task cache (with --etcd-endpoints)")
	store := func() (cacheBackend, func(), error) {
		if ef.Endpoints == "" {
			ef.Endpoints = os.Getenv("ROTOR_ETCD_ENDPOINTS")
		}
		if ef.Endpoints == "" && admin.addr == "" {
			// An unsharded sandbox runs no manager: its etcd, with its
			// client certificate if it has one.
			if env, err := localcluster.Load(".rotor"); err == nil && len(env.ManagerAdmin) == 0 && env.Registry == "" {
				c, err := env.EtcdClient()
				if err != nil {
					return nil, nil, err
				}
				return taskcache.NewStore(c, prefix), func() { c.Close() }, nil
			}
		}
		if ef.Endpoints == "" {
			c, done, err := dialAdmin(g, admin)
			if err != nil {
				return nil, nil, err
			}
			return adminCache{c}, done, nil
		}
		if err := ef.Validate(); err != nil {
			return nil, nil, err
		}
		c, err := ef.New()
		if err != nil {
			return nil, nil, err
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

// adminCache is the task cache through a manager's admin API.
type adminCache struct{ c adminpb.AdminClient }

func (a adminCache) List(ctx context.Context, namespace, task string) ([]*taskcache.Entry, error) {
	resp, err := a.c.ListCacheEntries(ctx, &adminpb.ListCacheEntriesRequest{Namespace: namespace, Task: task})
	if err != nil {
		return nil, fmt.Errorf("list cache entries of %s: %w", namespace, err)
	}
	out := make([]*taskcache.Entry, 0, len(resp.Entries))
	for _, e := range resp.Entries {
		out = append(out, &taskcache.Entry{
			Key:    taskcache.Key{Namespace: namespace, Task: e.Task, Version: e.Version, Definition: e.Definition, InputsHash: e.InputsHash},
			Source: e.Source, CreatedAt: time.UnixMilli(e.CreatedUnixMillis),
		})
	}
	return out, nil
}

func (a adminCache) Delete(ctx context.Context, namespace, task, hashPrefix string) (int, error) {
	resp, err := a.c.DeleteCacheEntries(ctx, &adminpb.DeleteCacheEntriesRequest{Namespace: namespace, Task: task, InputsHashPrefix: hashPrefix})
	if err != nil {
		return 0, fmt.Errorf("delete cache entries of task %s in %s: %w", task, namespace, err)
	}
	return int(resp.Deleted), nil
}
