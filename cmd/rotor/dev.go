package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotor-dev/rotor/internal/localcluster"
)

type devFlags struct {
	dir      string
	binDir   string
	crdDir   string
	clusters int
	replicas int
	runtime  string
	detach   bool
	install  string
	chartDir string
	images   string
}

func devCmd() *cobra.Command {
	f := &devFlags{}
	cmd := &cobra.Command{Use: "dev", Short: "Run Rotor's local multi-cluster sandbox (real apiservers, fake or process nodes)"}
	cmd.PersistentFlags().StringVar(&f.dir, "dir", ".rotor", "state folder of the sandbox")
	up := &cobra.Command{
		Use:   "up",
		Short: "Start etcd, a control cluster, N target clusters and Rotor",
		RunE:  func(cmd *cobra.Command, _ []string) error { return devUp(cmd.Context(), cmd.OutOrStdout(), f) },
	}
	up.Flags().StringVar(&f.binDir, "bin-dir", "bin", "folder with etcd, kube-apiserver, kube-scheduler, kwok and the rotor binaries ('make tools build' fills it)")
	up.Flags().StringVar(&f.crdDir, "crd-dir", "charts/rotor/crds", "folder with Rotor's CRD YAML")
	up.Flags().IntVar(&f.clusters, "clusters", 2, "number of target clusters")
	up.Flags().IntVar(&f.replicas, "replicas", 1, "number of rotor-propeller replicas; more than one runs two rotor-managers and shards the namespaces")
	up.Flags().StringVar(&f.runtime, "runtime", "process", "node runtime of the targets: process (runs commands locally) or kwok (simulated)")
	up.Flags().BoolVar(&f.detach, "detach", false, "leave the sandbox running in the background and return")
	up.Flags().StringVar(&f.install, "install", "processes", "how Rotor runs: processes (started directly) or chart (helm install of charts/rotor: its pods run from Rotor's images in a sandbox registry; needs 'make image')")
	up.Flags().StringVar(&f.chartDir, "chart-dir", "charts", "folder with the rotor and rotor-target charts (--install chart)")
	up.Flags().StringVar(&f.images, "images", "bin/images", "OCI layout of Rotor's images, from 'make image' (--install chart)")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the sandbox's clusters and processes",
		RunE:  func(cmd *cobra.Command, _ []string) error { return devStatus(cmd.OutOrStdout(), f.dir) },
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the sandbox and delete its state",
		RunE:  func(cmd *cobra.Command, _ []string) error { return devDown(cmd.OutOrStdout(), f.dir) },
	}
	cmd.AddCommand(up, status, down)
	return cmd
}

func devUp(ctx context.Context, out io.Writer, f *devFlags) error {
	if f.clusters < 1 {
		return fmt.Errorf("--clusters must be at least 1")
	}
	if f.replicas < 1 {
		return fmt.Errorf("--replicas must be at least 1")
	}
	if env, err := localcluster.Load(f.dir); err == nil && anyAlive(env) {
		return fmt.Errorf("a sandbox is already running in %s: run 'rotor dev down' first", f.dir)
	}
	if err := checkBinaries(f); err != nil {
		return err
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	binDir, _ := filepath.Abs(f.binDir)
	start := time.Now()
	fmt.Fprintf(out, "starting etcd, control cluster and %d target cluster(s) (%s runtime) in %s ...\n", f.clusters, f.runtime, f.dir)
	var users []string
	for i := 0; i < f.replicas; i++ {
		users = append(users, fmt.Sprintf("rotor-propeller-%d", i))
	}
	opts := localcluster.Options{
		Dir: dir, BinDir: binDir, CRDDir: f.crdDir, Targets: f.clusters,
		Runtime: localcluster.Runtime(f.runtime), Users: users,
		// etcd wants client certificates and has auth on, as a
		// production etcd does: the managers and replicas connect as
		// their own etcd users (rotor etcd roles).
		EtcdTLS: true, EtcdAuth: true,
	}
	setup := func(env *localcluster.Env) error { return setupRotor(ctx, env, f.replicas) }
	if f.install == "chart" {
		// helm installs the CRDs; two nodes run Rotor's pods.
		opts.CRDDir, opts.ControlNodes = "", 2
		setup = func(env *localcluster.Env) error { return setupChart(ctx, env, f) }
	}
	env, err := localcluster.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("start sandbox: %w (logs in %s)", err, filepath.Join(f.dir, "logs"))
	}
	if err := setup(env); err != nil {
		env.Stop()
		return fmt.Errorf("start Rotor in the sandbox: %w (logs in %s)", err, filepath.Join(f.dir, "logs"))
	}
	if err := copyFile(env.Control.Kubeconfig, filepath.Join(dir, "kubeconfig")); err != nil {
		env.Stop()
		return err
	}
	fmt.Fprintf(out, "sandbox ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	printEnv(out, env, f.dir)
	if f.detach {
		fmt.Fprintln(out, "running in the background; stop it with: rotor dev down")
		return nil
	}
	fmt.Fprintln(out, "press Ctrl-C to stop")
	sig, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-sig.Done()
	fmt.Fprintln(out, "stopping sandbox ...")
	env.Stop()
	return nil
}

// checkBinaries fails early, saying what to build, when a binary or the
// images the chosen install needs are missing.
func checkBinaries(f *devFlags) error {
	need := []string{"etcd", "kube-apiserver", "kube-scheduler", "kwok", "rotor-nodeagent"}
	switch f.install {
	case "processes":
		need = append(need, "rotor-propeller", "rotor-manager", "rotor-data", "weed")
	case "chart":
		need = append(need, "kube-controller-manager", "rotor-registry", "helm")
		if _, err := os.Stat(filepath.Join(f.images, "index.json")); err != nil {
			return fmt.Errorf("no images in %s: run 'make image' first", f.images)
		}
	default:
		return fmt.Errorf("--install %q: use processes or chart", f.install)
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(f.binDir, b)); err != nil {
			return fmt.Errorf("%s is missing from %s: run 'make tools build' first", b, f.binDir)
		}
	}
	return nil
}

// setupChart installs Rotor with helm: one unsharded replica, or with
// --replicas 2 or more, two managers and that many sharded replicas.
func setupChart(ctx context.Context, env *localcluster.Env, f *devFlags) error {
	if err := env.CreateNamespaces(ctx, "team-a", "team-b"); err != nil {
		return err
	}
	if err := env.CreateExampleSecrets(ctx, "team-a", "team-b"); err != nil {
		return err
	}
	values := map[string]any{"sharded": f.replicas > 1, "propeller": map[string]any{"replicas": f.replicas}}
	return env.InstallChart(ctx, localcluster.ChartOptions{ChartDir: f.chartDir, ImageLayout: f.images, ImageTag: "dev", Values: values})
}

func setupRotor(ctx context.Context, env *localcluster.Env, replicas int) error {
	if err := env.CreateNamespaces(ctx, "team-a", "team-b"); err != nil {
		return err
	}
	if err := env.CreateExampleSecrets(ctx, "team-a", "team-b"); err != nil {
		return err
	}
	if err := env.RegisterTargets(ctx); err != nil {
		return err
	}
	// The data plane: an S3 server with the raw-data bucket; every
	// propeller started below gets its flags (localcluster.DataArgs).
	if _, err := env.StartDataPlane(ctx); err != nil {
		return fmt.Errorf("start the S3 server: %w", err)
	}
	if replicas == 1 {
		_, err := env.StartPropeller(0)
		return err
	}
	// Several replicas shard the namespaces: two managers (one leads) and
	// sharded replicas with the production lease TTL.
	o := localcluster.ShardingOptions{Partitions: 256, LeaseTTL: 10 * time.Second}
	for i := 0; i < 2; i++ {
		if _, err := env.StartManager(i, o); err != nil {
			return err
		}
	}
	// kubectl apply of an invalid workflow is refused at once, as in a
	// chart install (one manager's webhook here; the chart's Service
	// reaches either).
	if err := env.RegisterWebhook(ctx, env.ManagerWebhook[0]); err != nil {
		return err
	}
	for i := 0; i < replicas; i++ {
		if _, err := env.StartShardedPropeller(i, o); err != nil {
			return err
		}
	}
	return nil
}

func printEnv(out io.Writer, env *localcluster.Env, dir string) {
	fmt.Fprintf(out, "\ncontrol cluster  %s\n", env.Control.Server)
	for _, t := range env.Targets {
		fmt.Fprintf(out, "%-16s %s (%s runtime)\n", t.Name, t.Server, t.Runtime)
	}
	if env.S3 != nil {
		fmt.Fprintf(out, "object store     %s (S3, bucket %s; credentials: secret %s/%s)\n", env.S3.Endpoint, localcluster.RawDataBucket, localcluster.RotorNamespace, localcluster.RawDataSecret)
	}
	if env.Registry != "" {
		fmt.Fprintf(out, "image registry   %s (Rotor runs from its chart: kubectl get pods -n %s)\n", env.Registry, localcluster.RotorNamespace)
	}
	fmt.Fprintf(out, "\nrotor reads %s/kubeconfig by default; for kubectl:\n  export KUBECONFIG=%s/kubeconfig\n", dir, dir)
	fmt.Fprintf(out, "target kubeconfigs: %s/kubeconfigs/<target>.yaml; logs: %s/logs\n", dir, dir)
	fmt.Fprintf(out, "try: bin/rotor submit -n team-a -f docs/examples/diamond.yaml --wait\n")
}

func devStatus(out io.Writer, dir string) error {
	env, err := localcluster.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(out, "no sandbox in %s: start one with 'rotor dev up'\n", dir)
		return exitError{code: 3}
	}
	if err != nil {
		return err
	}
	printEnv(out, env, dir)
	fmt.Fprintln(out, "\nPROCESS                          PID      STATE")
	down := 0
	for _, p := range env.Processes {
		state := "running"
		if exited, _ := p.Exited(); exited {
			state, down = "stopped (see "+p.Log+")", down+1
		}
		fmt.Fprintf(out, "%-32s %-8d %s\n", p.Name, p.PID, state)
	}
	if down > 0 {
		return exitError{code: 1}
	}
	return nil
}

func devDown(out io.Writer, dir string) error {
	env, err := localcluster.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(out, "no sandbox in %s\n", dir)
		return nil
	}
	if err != nil {
		return err
	}
	env.Stop()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	fmt.Fprintf(out, "sandbox stopped and %s removed\n", dir)
	return nil
}

func anyAlive(env *localcluster.Env) bool {
	for _, p := range env.Processes {
		if exited, _ := p.Exited(); !exited {
			return true
		}
	}
	return false
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
