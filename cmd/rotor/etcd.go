package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotor-dev/rotor/internal/etcdclient"
	"github.com/rotor-dev/rotor/internal/etcdroles"
)

func etcdCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "etcd", Short: "Manage Rotor's access to etcd"}
	cmd.AddCommand(etcdRolesCmd())
	return cmd
}

// etcdRolesCmd prints, or makes etcd hold, the roles of the manager and
// the replicas (package etcdroles). The platform team runs it once per
// installation with etcd's root certificate, and again after an upgrade
// whose notes say the roles changed; it is idempotent.
func etcdRolesCmd() *cobra.Command {
	var f etcdclient.Flags
	l := etcdroles.DefaultLayout()
	var apply, enable bool
	cmd := &cobra.Command{
		Use:   "roles [--apply [--enable-auth]]",
		Short: "Print or apply the etcd roles and users of rotor-manager and rotor-propeller",
		Long: "Prints the etcd roles (and users of the same names, which client certificates with those Common Names " +
			"authenticate as) that give rotor-manager and rotor-propeller only their own keys: a replica cannot write " +
			"the shard map. --apply makes etcd hold exactly them, revoking anything else granted to those users; " +
			"--enable-auth also makes sure user root has the root role and turns etcd's auth on. Both need etcd's root " +
			"client certificate (--etcd-cert-file). Give the same prefixes as the installation's flags " +
			"(chart: shardPrefix, propeller.cachePrefix, propeller.callJournalPrefix).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			roles, err := etcdroles.Plan(l)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !apply {
				if enable {
					return errors.New("--enable-auth needs --apply")
				}
				fmt.Fprint(out, etcdroles.Format(roles))
				return nil
			}
			if f.Endpoints == "" {
				return errors.New("--apply needs --etcd-endpoints (and etcd's root client certificate)")
			}
			if err := f.Validate(); err != nil {
				return err
			}
			c, err := f.NewQuiet()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			changes, err := etcdroles.Apply(ctx, c, roles, etcdroles.Options{EnableAuth: enable})
			for _, ch := range changes {
				fmt.Fprintln(out, ch)
			}
			if err != nil {
				return err
			}
			if len(changes) == 0 {
				fmt.Fprintln(out, "etcd already holds these roles; nothing changed")
			}
			return nil
		},
	}
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	f.Bind(fs, "etcd client URLs (with --apply)")
	cmd.Flags().AddGoFlagSet(fs)
	cmd.Flags().StringVar(&l.ShardPrefix, "shard-prefix", l.ShardPrefix, "etcd prefix of the shard map and membership (--shard-prefix of both components)")
	cmd.Flags().StringVar(&l.CachePrefix, "cache-prefix", l.CachePrefix, "etcd key prefix of the task cache (--cache-prefix)")
	cmd.Flags().StringVar(&l.CallsPrefix, "call-journal-prefix", l.CallsPrefix, "etcd key prefix of the http call journal (--call-journal-prefix of rotor-propeller)")
	cmd.Flags().BoolVar(&apply, "apply", false, "make etcd hold exactly these roles and users")
	cmd.Flags().BoolVar(&enable, "enable-auth", false, "with --apply: also grant root the root role and turn etcd's auth on")
	return cmd
}
