package executor

import "github.com/prometheus/client_golang/prometheus"

var failovers = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rotor_cluster_failovers_total",
	Help: "Attempts moved off a target cluster, by cause (ClusterLost: unreachable past its grace period; ClusterDrained: NoExecute taint).",
}, []string{"cluster", "reason"})

func init() { prometheus.MustRegister(failovers) }

var orphansDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rotor_cluster_orphans_deleted_total",
	Help: "Pods of abandoned attempts deleted from a target cluster after it came back.",
}, []string{"cluster"})

func init() { prometheus.MustRegister(orphansDeleted) }
