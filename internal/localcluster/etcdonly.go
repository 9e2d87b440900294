package localcluster

import (
	"context"
	"os"
	"path/filepath"
)

// StartEtcd starts etcd alone (with TLS if opts.EtcdTLS), for programs
// that exercise the shard protocol without any apiserver. Stop ends it.
func StartEtcd(ctx context.Context, opts Options) (_ *Env, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	e := &Env{Dir: opts.Dir, opts: opts, Tokens: map[string]string{}}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	for _, d := range []string{"logs", "pki", "data"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if opts.EtcdTLS {
		if e.pki, err = writePKI(filepath.Join(opts.Dir, "pki")); err != nil {
			return nil, err
		}
		e.CAPEM = e.pki.CAPEM
	}
	return e, e.startEtcd(ctx)
}
