// Package location says which raw-data location serves a namespace: the
// install's, or the tenant's own, which the platform team names with two
// annotations on the Namespace (tenants cannot write Namespaces):
//
//	rotor.dev/raw-data-url:    s3://team-a-data/rotor?endpoint=...
//	rotor.dev/raw-data-secret: team-a-raw-data   (a Secret in Rotor's namespace)
//
// A tenant's data then lives in its own bucket, under its own credentials:
// the data agent of its pods gets those, never the install's. Locations
// are opened once and kept (by URL and Secret); a Secret is read when its
// location is first used and again after SecretTTL, so a rotation is
// picked up.
//
// Values routes the executor's offloaded values to the location that
// holds them: by namespace when writing, by URI when reading.
package location

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rotor-dev/rotor/data/offload"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

// The Namespace annotations of a tenant's own location.
const (
	AnnotURL    = "rotor.dev/raw-data-url"
	AnnotSecret = "rotor.dev/raw-data-secret"
)

// SecretTTL is how long a location's credentials are used before its
// Secret is read again.
const SecretTTL = 5 * time.Minute

// Location is one opened raw-data location.
type Location struct {
	// URL is the location's URL (store.Config.URL); Secret the name of
	// the Secret with its credentials ("" for none).
	URL, Secret string
	Store       *store.Store
	// AccessKeyID and SecretAccessKey are what the data agent gets.
	AccessKeyID, SecretAccessKey string
	Values                       *offload.Offloader
	Health                       *store.Health
	opened                       time.Time
}

// Root is the location's root URI.
func (l *Location) Root() string { return l.Store.Root() }

// Resolver finds each namespace's location.
type Resolver struct {
	// Default is the install's location (--raw-data-url).
	Default *Location
	// Annotations returns a namespace's annotations (an informer's
	// cache); nil: every namespace uses Default.
	Annotations func(namespace string) (map[string]string, error)
	// Secret reads a Secret in Rotor's namespace.
	Secret func(ctx context.Context, name string) (map[string][]byte, error)
	// MaxValueBytes bounds what each location's Values reads back.
	MaxValueBytes int64
	Now           func() time.Time

	mu   sync.Mutex
	open map[string]*Location // by URL + "\x00" + Secret
}

// Open opens a location: credentials from secret (may be empty).
func Open(ctx context.Context, url string, creds map[string][]byte, secret string, maxValue int64, now func() time.Time) (*Location, error) {
	cfg := store.Config{URL: url, AccessKeyID: string(creds["accessKeyID"]), SecretAccessKey: string(creds["secretAccessKey"])}
	if secret != "" && (cfg.AccessKeyID == "" || cfg.SecretAccessKey == "") {
		return nil, fmt.Errorf("secret %s needs keys accessKeyID and secretAccessKey", secret)
	}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Location{URL: url, Secret: secret, Store: st, AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey,
		Values: offload.New(st, maxValue, 0), Health: store.NewHealth(st.Check, 5*time.Second, now), opened: now()}, nil
}

// For returns namespace's location: its own when its Namespace names
// one, else the install's. A Namespace that names a URL without a usable
// Secret is an error (its tasks must not fall back to the install's
// store, where the platform did not mean their data to go).
func (r *Resolver) For(ctx context.Context, namespace string) (*Location, error) {
	if r.Annotations == nil {
		return r.Default, nil
	}
	ann, err := r.Annotations(namespace)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", namespace, err)
	}
	url := ann[AnnotURL]
	if url == "" {
		return r.Default, nil
	}
	secret := ann[AnnotSecret]
	key := url + "\x00" + secret
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.open[key]
	if ok && (secret == "" || r.Now().Sub(old.opened) < SecretTTL) {
		return old, nil
	}
	var creds map[string][]byte
	if secret != "" {
		if r.Secret == nil {
			return nil, fmt.Errorf("namespace %s names its raw-data Secret %s, but this Rotor reads no Secrets", namespace, secret)
		}
		if creds, err = r.Secret(ctx, secret); err != nil {
			return nil, fmt.Errorf("namespace %s's raw-data location: read secret %s (annotation %s; the propeller needs get on it): %w", namespace, secret, AnnotSecret, err)
		}
	}
	if ok && string(creds["accessKeyID"]) == old.AccessKeyID && string(creds["secretAccessKey"]) == old.SecretAccessKey {
		old.opened = r.Now() // not rotated: keep the store and what it cached
		return old, nil
	}
	l, err := Open(ctx, url, creds, secret, r.MaxValueBytes, r.Now)
	if err != nil {
		return nil, fmt.Errorf("namespace %s's raw-data location (annotation %s): %w", namespace, AnnotURL, err)
	}
	if r.open == nil {
		r.open = map[string]*Location{}
	}
	if ok {
		// Rotated: whoever still holds the old location finishes with
		// it; it is closed a minute later.
		time.AfterFunc(time.Minute, func() { old.Store.Close() })
	}
	r.open[key] = l
	return l, nil
}

// All lists the install's location and every tenant location opened so
// far.
func (r *Resolver) All() []*Location {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []*Location{r.Default}
	for _, l := range r.open {
		out = append(out, l)
	}
	return out
}

// Values is the executor's view of every location's offloaded values
// (executor.Values): Root by namespace, everything else by the URI it
// is about.
type Values struct{ R *Resolver }

// Root is namespace's location's root ("" when it cannot be opened:
// offloading then fails with the reason).
func (v Values) Root(namespace string) string {
	l, err := v.R.For(context.Background(), namespace)
	if err != nil {
		return ""
	}
	return l.Root()
}

// byURI finds the location holding uri: the one with the longest root
// that prefixes it (a tenant's location may lie inside the install's
// bucket, with other credentials).
func (v Values) byURI(uri string) (*Location, error) {
	var best *Location
	for _, l := range v.R.All() {
		if l != nil && strings.HasPrefix(uri, l.Root()) && (best == nil || len(l.Root()) > len(best.Root())) {
			best = l
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%s is in no raw-data location this propeller knows", uri)
	}
	return best, nil
}

// Offload stores raw under prefix, in the location prefix lies in.
func (v Values) Offload(ctx context.Context, prefix, name string, raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) <= ref.InlineLimit {
		return raw, nil
	}
	l, err := v.byURI(prefix)
	if err != nil {
		return nil, err
	}
	return l.Values.Offload(ctx, prefix, name, raw)
}

// Materialize reads an offloaded value from the location holding it.
func (v Values) Materialize(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	r, isRef, err := ref.ParseOffloaded(raw)
	if err != nil || !isRef {
		return raw, err
	}
	l, err := v.byURI(r.URI)
	if err != nil {
		return nil, err
	}
	return l.Values.Load(ctx, r)
}

// Files lists a directory's files from the location holding it.
func (v Values) Files(ctx context.Context, dir ref.Ref) ([]ref.Ref, []string, error) {
	l, err := v.byURI(dir.URI)
	if err != nil {
		return nil, nil, err
	}
	return l.Values.Files(ctx, dir)
}

// Tenants opens the own locations the namespaces' annotations name (each
// once), for the retention sweeper. A location that cannot be opened is
// left out and reported in errs: the others are still swept.
func (r *Resolver) Tenants(ctx context.Context, namespaces []string) (locs []*Location, errs []error) {
	seen := map[*Location]bool{r.Default: true}
	for _, ns := range namespaces {
		l, err := r.For(ctx, ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !seen[l] {
			seen[l] = true
			locs = append(locs, l)
		}
	}
	return locs, errs
}
