package main

import (
	"context"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// dataConfig reads the raw-data Secret and opens the store (no request
// is made): its root and credentials for the pod plugin, and the store
// itself, for the executor's offloaded values and the sweeper. A missing
// Secret or key stops the start-up with what to create.
func dataConfig(ctx context.Context, kube kubernetes.Interface, cfg *config) (*pod.DataConfig, *store.Store, error) {
	st, sc, err := cfg.rawData.Open(ctx, kube, cfg.namespace)
	if err != nil {
		return nil, nil, err
	}
	return &pod.DataConfig{
		StoreURL: cfg.rawData.URL, Root: st.Root(), AccessKeyID: sc.AccessKeyID, SecretAccessKey: sc.SecretAccessKey,
		Image: cfg.dataAgentImage, Command: cfg.dataAgentCommand, MaxOutputBytes: cfg.maxOutputBytes,
		Resources: cfg.dataAgentResources,
		// Data pods wait while the store does not answer; asked at most
		// every 5 s.
		Health: store.NewHealth(st.Check, 5*time.Second, time.Now),
	}, st, nil
}
