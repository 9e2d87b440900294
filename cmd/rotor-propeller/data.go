package main

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/data/location"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// dataPlane reads the raw-data Secret and opens the install's location
// (no request is made), and returns the resolver of every namespace's
// location (a tenant's own, named by its Namespace's annotations, or the
// install's) and the pod plugin's settings over it. A missing Secret or
// key stops the start-up with what to create.
func dataPlane(ctx context.Context, kube kubernetes.Interface, cfg *config, annotations func(string) (map[string]string, error)) (*location.Resolver, *pod.DataConfig, error) {
	st, sc, err := cfg.rawData.Open(ctx, kube, cfg.namespace)
	if err != nil {
		return nil, nil, err
	}
	st.Close() // opened again by location.Open, with the same settings
	creds := map[string][]byte{"accessKeyID": []byte(sc.AccessKeyID), "secretAccessKey": []byte(sc.SecretAccessKey)}
	def, err := location.Open(ctx, cfg.rawData.URL, creds, cfg.rawData.Secret, cfg.maxValueBytes, time.Now)
	if err != nil {
		return nil, nil, err
	}
	res := &location.Resolver{
		Default: def, Annotations: annotations, MaxValueBytes: cfg.maxValueBytes, Now: time.Now,
		Secret: func(ctx context.Context, name string) (map[string][]byte, error) {
			sec, err := kube.CoreV1().Secrets(cfg.namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return sec.Data, nil
		},
	}
	base := pod.DataConfig{
		Image: cfg.dataAgentImage, Command: cfg.dataAgentCommand, MaxOutputBytes: cfg.maxOutputBytes,
		Resources: cfg.dataAgentResources,
	}
	with := func(l *location.Location) *pod.DataConfig {
		c := base
		c.StoreURL, c.Root, c.AccessKeyID, c.SecretAccessKey = l.URL, l.Root(), l.AccessKeyID, l.SecretAccessKey
		// Data pods wait while their store does not answer (asked at
		// most every 5 s).
		c.Health = l.Health
		return &c
	}
	d := with(def)
	d.For = func(ctx context.Context, namespace string) (*pod.DataConfig, error) {
		l, err := res.For(ctx, namespace)
		if err != nil {
			return nil, err
		}
		return with(l), nil
	}
	return res, d, nil
}
