package plugins

import (
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Cluster is a target cluster as plugins see it: a client and a cache of
// the task pods Rotor manages there.
type Cluster struct {
	Name   string
	Client kubernetes.Interface
	// Pods lists pods labelled rotor.dev/managed=true, from an informer.
	Pods corelisters.PodLister
}
