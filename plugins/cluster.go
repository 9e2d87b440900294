package plugins

import (
	"time"

	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Cluster is a target cluster as plugins see it: a client and a cache of
// the task pods Rotor manages there.
type Cluster struct {
	Name   string
	Client kubernetes.Interface
	// Pods lists pods labelled rotor.dev/managed=true, from an informer.
	Pods corelisters.PodLister
	// Tenant returns a client of the cluster that acts as namespace's
	// launcher identity (impersonation), for what Rotor creates on a
	// tenant's behalf. Nil where a test gives none.
	Tenant func(namespace string) (corev1client.CoreV1Interface, error)
}

// ClusterHealth is what the engine needs to know of a cluster's health
// to decide whether its attempts must move.
type ClusterHealth struct {
	// Known is false for a cluster that is not registered.
	Known bool
	// Unreachable: the cluster does not answer now (or has no client).
	Unreachable bool
	// UnreachableSince is when it became unreachable: the prober's first
	// unanswered probe, or when this process was last left without a
	// client for it. Zero while reachable.
	UnreachableSince time.Time
	// NotReady: it answers but its /readyz fails (or it was never probed
	// ready); nothing new is placed there.
	NotReady bool
	// Lost: unreachable for longer than its grace period; every attempt
	// there fails over.
	Lost bool
	// LostIn is how long an unreachable cluster has left of its grace
	// period (0 when reachable or already lost).
	LostIn time.Duration
	// Drained: a NoExecute taint; attempts whose pod has not started move.
	Drained bool
	// Why says which, for the attempt's message.
	Why string
}
