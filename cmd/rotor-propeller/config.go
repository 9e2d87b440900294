package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/rotor-dev/rotor/cluster/health"
	"github.com/rotor-dev/rotor/controller/propeller"
	"github.com/rotor-dev/rotor/data/offload"
	"github.com/rotor-dev/rotor/internal/endpoints"
	"github.com/rotor-dev/rotor/internal/etcdclient"
	"github.com/rotor-dev/rotor/internal/rawdata"
	"github.com/rotor-dev/rotor/internal/tracing"
	rotorhttp "github.com/rotor-dev/rotor/plugins/http"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// config is every setting of a replica, filled from flags and checked in
// validate, the one place defaults and limits live.
type config struct {
	kubeconfig        string
	namespace         string
	listen            string
	endpoints         endpoints.Flags
	workers           int
	logLevel          string
	startedWriteDelay time.Duration
	events            string
	cleanupTimeout    time.Duration
	tracing           *tracing.Options
	resync            time.Duration
	etcd              etcdclient.Flags
	cachePrefix       string
	callJournalPrefix string

	interruptibleSelector    string
	interruptibleTolerations string
	httpAllowed              string
	httpTimeout              time.Duration
	tenantSecrets            bool
	tenantIsolation          bool

	sharded     bool
	name        string
	partitions  int
	leaseTTL    time.Duration
	shardPrefix string
	drainWait   time.Duration

	pod  pod.Config
	http rotorhttp.Config

	// probe holds the cluster prober's settings; a lone (unsharded)
	// propeller probes the clusters itself, sharded ones leave it to the
	// leading manager.
	probe         *health.Prober
	probeClusters bool
	// kubeQPS and kubeBurst limit requests to the control cluster.
	kubeQPS   float64
	kubeBurst int
	// podWatches is how a sharded replica watches task pods: per
	// namespace it holds, or every pod of each target.
	podWatches string
	// The data plane: the raw-data location and the Secret of its
	// credentials, the data agent's image and executable, the limits, and
	// the retention sweeper (which a lone unsharded replica runs).
	rawData                            rawdata.Flags
	sweep                              rawdata.Sweep
	dataAgentImage, dataAgentCommand   string
	dataAgentRequests, dataAgentLimits string
	dataAgentResources                 corev1.ResourceRequirements
	maxOutputBytes                     int64
	maxValueBytes                      int64
}

func (c *config) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig of the control cluster (default: in-cluster)")
	fs.StringVar(&c.namespace, "namespace", "rotor-system", "Rotor's namespace: where cluster kubeconfig Secrets live")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9090", "address for /metrics, /healthz and /readyz")
	c.endpoints.Bind(fs)
	fs.IntVar(&c.workers, "workers", 8, "concurrent reconcile workers")
	fs.Float64Var(&c.kubeQPS, "kube-qps", 200, "requests per second to the control cluster (target clusters: each Cluster's spec.client)")
	fs.IntVar(&c.kubeBurst, "kube-burst", 400, "request burst to the control cluster")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	c.tracing = tracing.BindFlags(fs)
	fs.DurationVar(&c.resync, "resync", 30*time.Second, "how often a running workflow is looked at without any event")
	fs.DurationVar(&c.startedWriteDelay, "started-write-delay", time.Second,
		"hold back a status write whose only news is tasks starting to run for up to this long, so a short task's start and end cost one write (0: write at once)")
	fs.StringVar(&c.events, "events", "failures",
		"which phase changes become Kubernetes Events on Workflows: failures (Warnings only), all (every workflow phase change too) or none")
	fs.DurationVar(&c.cleanupTimeout, "cleanup-unreachable-timeout", propeller.DefaultCleanupUnreachableTimeout,
		"how long a deleted workflow waits for a target cluster that does not answer (counted from when it became unreachable) before leaving its pods there behind (0: wait for ever)")
	c.etcd.Bind(fs, "comma-separated etcd client URLs of the task cache and, with --shard, the shard map (empty: caching off)")
	fs.StringVar(&c.cachePrefix, "cache-prefix", "/rotor/cache/", "etcd key prefix of the task cache")
	fs.StringVar(&c.callJournalPrefix, "call-journal-prefix", "/rotor/calls/",
		"etcd key prefix of the http tasks' call journal, where replicas keep the answers to calls until their rounds record them (with --etcd-endpoints; without, the journal is in this process only)")
	fs.StringVar(&c.interruptibleSelector, "interruptible-node-selector", "", "node selector added to interruptible attempts, k=v[,k=v]")
	fs.BoolVar(&c.tenantSecrets, "tenant-secrets", true, "read the Secrets tasks reference in their own namespace of the control cluster: copied into the target for env secretKeyRef, read for http secretHeaders (needs get on secrets; false: env references are resolved by the target in its namespace, and secretHeaders fail)")
	fs.BoolVar(&c.tenantIsolation, "tenant-isolation", true, "isolate tenants in target clusters: judge each task by its namespace's TenantPolicy before its pod, label the target namespace with the policy's Pod Security level, run pods as the tenant's rotor-task ServiceAccount, and create them by impersonating the tenant's rotor-launcher ServiceAccount (needs charts/rotor-target with tenantIsolation, and list/watch on tenantpolicies; false: one shared credential and no policy)")
	fs.StringVar(&c.httpAllowed, "http-allowed-url-prefixes", "", "comma-separated URL prefixes every tenant's http tasks may call, e.g. https://hooks.example.com/ (empty: none; a namespace's rotor.dev/http-allowed-url-prefixes annotation adds its own)")
	fs.DurationVar(&c.httpTimeout, "http-timeout", 30*time.Second, "timeout of one request of an http task")
	fs.BoolVar(&c.sharded, "shard", false, "reconcile only the partitions the shard manager assigns (needs --etcd-endpoints)")
	fs.StringVar(&c.name, "name", "", "replica name in the membership (default: the host name)")
	fs.IntVar(&c.partitions, "partitions", 256, "number of partitions; fixed at install, the same on every manager and replica")
	fs.DurationVar(&c.leaseTTL, "lease-ttl", 10*time.Second, "membership lease TTL: a replica that stops renewing is replaced after this long")
	fs.StringVar(&c.shardPrefix, "shard-prefix", "/rotor", "etcd prefix of the shard map and membership")
	fs.StringVar(&c.podWatches, "pod-watches", "shard",
		"with --shard, which task pods of each target a replica watches: shard (one watch per namespace it holds) or all (one watch of every Rotor pod, as an unsharded propeller)")
	fs.DurationVar(&c.drainWait, "drain-timeout", 60*time.Second, "on SIGTERM, how long to wait for this replica's partitions to be handed over")
	fs.BoolVar(&c.probeClusters, "probe-clusters", true, "without --shard: probe every target cluster and write its conditions (with --shard the leading manager does)")
	c.probe = &health.Prober{}
	c.probe.BindFlags(fs)
	c.rawData.Bind(fs, " (tasks with file or directory inputs or outputs fail, and values stay inline); Rotor keeps a copy of --raw-data-secret, rotor-data-credentials, in each tenant namespace of the targets for the data agent")
	c.sweep.Bind(fs)
	fs.StringVar(&c.dataAgentImage, "data-agent-image", "rotor-data:dev", "image of the data agent added to task pods that move files or directories")
	fs.StringVar(&c.dataAgentRequests, "data-agent-requests", "cpu=50m,memory=64Mi", "resource requests of each data agent container (name=quantity,...): counted by quotas and the scheduler beside the task's own")
	fs.StringVar(&c.dataAgentLimits, "data-agent-limits", "memory=256Mi", "resource limits of each data agent container (name=quantity,...; empty: none)")
	fs.StringVar(&c.dataAgentCommand, "data-agent-command", "", "the data agent's executable in its image (default /rotor-data; the sandbox's process runtime gives bin/rotor-data's path)")
	fs.Int64Var(&c.maxOutputBytes, "max-output-bytes", 10<<30, "largest file or directory output a task may write, in bytes (0: no limit)")
	fs.Int64Var(&c.maxValueBytes, "max-value-bytes", offload.DefaultMaxLoad, "largest offloaded value the propeller reads back to compute with (render, gather, branch on, map over), in bytes; a larger one is refused with a message: pass it whole to a task instead")
	fs.StringVar(&c.interruptibleTolerations, "interruptible-tolerations", "", "tolerations added to interruptible attempts, key[=value]:Effect[,...]")
}

func (c *config) validate() error {
	if err := c.endpoints.Validate(); err != nil {
		return err
	}
	if c.workers < 1 {
		return fmt.Errorf("--workers must be at least 1, got %d", c.workers)
	}
	if c.kubeQPS <= 0 || c.kubeBurst < 1 {
		return fmt.Errorf("--kube-qps must be above 0 and --kube-burst at least 1, got %g and %d", c.kubeQPS, c.kubeBurst)
	}
	if err := c.etcd.Validate(); err != nil {
		return err
	}
	if c.sharded {
		if c.etcd.Endpoints == "" {
			return fmt.Errorf("--shard needs --etcd-endpoints")
		}
		if c.leaseTTL < 2*time.Second {
			return fmt.Errorf("--lease-ttl must be at least 2s, got %s", c.leaseTTL)
		}
		if c.partitions < 1 {
			return fmt.Errorf("--partitions must be at least 1, got %d", c.partitions)
		}
		if c.name == "" {
			h, err := os.Hostname()
			if err != nil {
				return fmt.Errorf("--name not given and no host name: %w", err)
			}
			c.name = h
		}
	}
	if c.podWatches != "shard" && c.podWatches != "all" {
		return fmt.Errorf("--pod-watches must be shard or all, got %q", c.podWatches)
	}
	if _, err := propeller.ParseEventPolicy(c.events); err != nil {
		return fmt.Errorf("--events: %w", err)
	}
	if c.cleanupTimeout < 0 {
		return fmt.Errorf("--cleanup-unreachable-timeout must not be negative, got %s", c.cleanupTimeout)
	}
	if c.resync < time.Second {
		return fmt.Errorf("--resync must be at least 1s, got %s", c.resync)
	}
	if !strings.HasSuffix(c.cachePrefix, "/") {
		return fmt.Errorf("--cache-prefix must end with /, got %q", c.cachePrefix)
	}
	sel, err := parseSelector(c.interruptibleSelector)
	if err != nil {
		return fmt.Errorf("--interruptible-node-selector: %w", err)
	}
	tols, err := parseTolerations(c.interruptibleTolerations)
	if err != nil {
		return fmt.Errorf("--interruptible-tolerations: %w", err)
	}
	c.pod = pod.Config{InterruptibleNodeSelector: sel, InterruptibleTolerations: tols}
	if c.dataAgentResources.Requests, err = parseResources(c.dataAgentRequests); err != nil {
		return fmt.Errorf("--data-agent-requests: %w", err)
	}
	if c.dataAgentResources.Limits, err = parseResources(c.dataAgentLimits); err != nil {
		return fmt.Errorf("--data-agent-limits: %w", err)
	}
	if c.httpTimeout <= 0 {
		return fmt.Errorf("--http-timeout must be positive, got %s", c.httpTimeout)
	}
	c.http = rotorhttp.Config{Timeout: c.httpTimeout}
	if c.http.AllowedURLPrefixes, err = rotorhttp.ParsePrefixes(c.httpAllowed); err != nil {
		return fmt.Errorf("--http-allowed-url-prefixes: %w", err)
	}
	return nil
}

// parseResources parses name=quantity,... (cpu=50m,memory=64Mi).
func parseResources(s string) (corev1.ResourceList, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := corev1.ResourceList{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want name=quantity", kv)
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, nil
}

func parseSelector(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func parseTolerations(s string) ([]corev1.Toleration, error) {
	if s == "" {
		return nil, nil
	}
	var out []corev1.Toleration
	for _, item := range strings.Split(s, ",") {
		kv, effect, ok := strings.Cut(item, ":")
		switch corev1.TaintEffect(effect) {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("%q: effect must be NoSchedule, PreferNoSchedule or NoExecute", item)
		}
		if !ok || kv == "" {
			return nil, fmt.Errorf("%q is not key[=value]:Effect", item)
		}
		t := corev1.Toleration{Effect: corev1.TaintEffect(effect), Operator: corev1.TolerationOpExists}
		if k, v, hasValue := strings.Cut(kv, "="); hasValue {
			t.Key, t.Value, t.Operator = k, v, corev1.TolerationOpEqual
		} else {
			t.Key = kv
		}
		out = append(out, t)
	}
	return out, nil
}
