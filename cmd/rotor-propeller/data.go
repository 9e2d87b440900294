package main

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// dataConfig reads the raw-data Secret and opens the store (no request
// is made): its root for the pod plugin, and the store itself, for the
// executor's offloaded values. A missing Secret or key stops the start-up
// with what to create.
func dataConfig(ctx context.Context, kube kubernetes.Interface, cfg *config) (*pod.DataConfig, *store.Store, error) {
	d := &pod.DataConfig{StoreURL: cfg.rawDataURL, Image: cfg.dataAgentImage, Command: cfg.dataAgentCommand, MaxOutputBytes: cfg.maxOutputBytes}
	if cfg.rawDataSecret != "" {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sec, err := kube.CoreV1().Secrets(cfg.namespace).Get(rctx, cfg.rawDataSecret, metav1.GetOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("--raw-data-secret: read secret %s/%s: %w", cfg.namespace, cfg.rawDataSecret, err)
		}
		d.AccessKeyID, d.SecretAccessKey = string(sec.Data["accessKeyID"]), string(sec.Data["secretAccessKey"])
		if d.AccessKeyID == "" || d.SecretAccessKey == "" {
			return nil, nil, fmt.Errorf("--raw-data-secret: secret %s/%s needs keys accessKeyID and secretAccessKey", cfg.namespace, cfg.rawDataSecret)
		}
	}
	st, err := store.Open(ctx, store.Config{URL: d.StoreURL, AccessKeyID: d.AccessKeyID, SecretAccessKey: d.SecretAccessKey})
	if err != nil {
		return nil, nil, fmt.Errorf("--raw-data-url: %w", err)
	}
	d.Root = st.Root()
	return d, st, nil
}
