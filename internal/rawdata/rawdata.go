// Package rawdata opens the install's raw-data location the way every
// Rotor process does: the URL from --raw-data-url, the S3 credentials
// from the Secret --raw-data-secret names in Rotor's namespace (keys
// accessKeyID and secretAccessKey).
package rawdata

import (
	"context"
	"flag"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/data/store"
)

// Flags are the raw-data location's flags.
type Flags struct {
	URL, Secret string
}

// Bind registers --raw-data-url and --raw-data-secret.
func (f *Flags) Bind(fs *flag.FlagSet, what string) {
	fs.StringVar(&f.URL, "raw-data-url", "", "object store of task files, directories and large values: s3://bucket/prefix?endpoint=URL&region=R, or file:///dir; empty: off"+what)
	fs.StringVar(&f.Secret, "raw-data-secret", "", "Secret in --namespace with the store's S3 credentials (keys accessKeyID, secretAccessKey); empty: none (a file:// store, or an S3 server that takes anonymous requests)")
}

// Open reads the Secret (if named) and opens the store; no request
// reaches the store. A missing Secret or key is an error saying what to
// create.
func (f *Flags) Open(ctx context.Context, kube kubernetes.Interface, namespace string) (*store.Store, store.Config, error) {
	cfg := store.Config{URL: f.URL}
	if f.Secret != "" {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sec, err := kube.CoreV1().Secrets(namespace).Get(rctx, f.Secret, metav1.GetOptions{})
		if err != nil {
			return nil, cfg, fmt.Errorf("--raw-data-secret: read secret %s/%s: %w", namespace, f.Secret, err)
		}
		cfg.AccessKeyID, cfg.SecretAccessKey = string(sec.Data["accessKeyID"]), string(sec.Data["secretAccessKey"])
		if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
			return nil, cfg, fmt.Errorf("--raw-data-secret: secret %s/%s needs keys accessKeyID and secretAccessKey", namespace, f.Secret)
		}
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, cfg, fmt.Errorf("--raw-data-url: %w", err)
	}
	return st, cfg, nil
}

// Sweep are the retention sweeper's flags.
type Sweep struct {
	Interval, Grace, Retention time.Duration
}

// Bind registers --raw-data-sweep-interval, --raw-data-sweep-grace and
// --raw-data-retention.
func (s *Sweep) Bind(fs *flag.FlagSet) {
	fs.DurationVar(&s.Interval, "raw-data-sweep-interval", 10*time.Minute, "how often the retention sweeper deletes the raw data of deleted and expired workflows (with --raw-data-url); 0: never")
	fs.DurationVar(&s.Grace, "raw-data-sweep-grace", 10*time.Minute, "the sweeper never deletes an object written this recently")
	fs.DurationVar(&s.Retention, "raw-data-retention", 0, "how long after a workflow finished its raw data is kept, where its namespace's annotation "+"rotor.dev/raw-data-retention"+" does not say; 0: as long as the workflow exists")
}
