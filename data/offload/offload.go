// Package offload is the engine's side of offloaded values: it stores a
// string, object or array value larger than ref.InlineLimit as an object
// and hands back {"$ref": ...}, reads such a value back (verified against
// its digest, bounded, cached), and lists a directory's files as file
// references so a map can run over them.
//
// The propeller uses it where it must compute with a value (render a
// string, gather a map's outputs, decide a branch, list a map's items)
// and where it writes one into a Workflow's status. A value passed whole
// from one node to the next is never read: its reference travels.
package offload

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

// Store is the object store an Offloader reads and writes.
type Store interface {
	Root() string
	Put(ctx context.Context, uri string, r io.Reader) (ref.Ref, error)
	Get(ctx context.Context, uri string) (io.ReadCloser, error)
	Fetch(ctx context.Context, want ref.Ref, w io.Writer) error
}

var _ Store = (*store.Store)(nil)

// Defaults.
const (
	// DefaultMaxLoad bounds a value the propeller reads into memory: a
	// larger one is a file's job, not a value's.
	DefaultMaxLoad = 64 << 20
	// DefaultCacheBytes is how much loaded values the cache keeps: a
	// map's offloaded list is read again every round otherwise.
	DefaultCacheBytes = 128 << 20
)

// Offloader stores and loads offloaded values. Safe for concurrent use.
type Offloader struct {
	st      Store
	maxLoad int64

	mu       sync.Mutex
	capacity int64
	used     int64
	lru      *list.List // of *entry, most recent first
	bySum    map[string]*list.Element
	// stored are URIs this Offloader wrote (names carry their digest, so
	// writing one again would write the same bytes): a value offloaded
	// every round, as a large rendered input is, costs one PUT.
	stored map[string]bool
}

// maxStored bounds stored; past it the set starts afresh (a repeated PUT
// is only a cost).
const maxStored = 100_000

type entry struct {
	sum string
	raw json.RawMessage
}

// New returns an Offloader over st. maxLoad and cacheBytes of 0 take the
// defaults.
func New(st Store, maxLoad, cacheBytes int64) *Offloader {
	if maxLoad <= 0 {
		maxLoad = DefaultMaxLoad
	}
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	return &Offloader{st: st, maxLoad: maxLoad, capacity: cacheBytes, lru: list.New(), bySum: map[string]*list.Element{}}
}

// Root is the store's root URI, under which prefixes are made.
func (o *Offloader) Root() string { return o.st.Root() }

// Offload returns raw itself when it fits inline, and otherwise stores it
// under prefix (ref.Value: named by its digest, so storing it again is
// harmless) and returns {"$ref": ...}. A value that is already a
// reference is returned as it is.
func (o *Offloader) Offload(ctx context.Context, prefix, name string, raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) <= ref.InlineLimit {
		return raw, nil
	}
	if _, isRef, _ := ref.ParseOffloaded(raw); isRef {
		return raw, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("offload %s: not JSON: %w", name, err)
	}
	if buf.Len() <= ref.InlineLimit {
		return buf.Bytes(), nil
	}
	b := buf.Bytes()
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	uri, err := ref.Value(prefix, name, digest)
	if err != nil {
		return nil, err
	}
	if o.wasStored(uri) {
		out, _ := json.Marshal(ref.Offloaded{Ref: ref.Ref{URI: uri, Size: int64(len(b)), SHA256: digest}})
		return out, nil
	}
	r, err := o.st.Put(ctx, uri, bytes.NewReader(b))
	if err != nil {
		return nil, &Unavailable{Err: fmt.Errorf("offload %s (%d bytes) to %s: %w", name, len(b), uri, err)}
	}
	if r.SHA256 != digest || r.Size != int64(len(b)) {
		return nil, fmt.Errorf("offload %s: the store reported %s (%d bytes) for what was %s (%d bytes)", name, r.SHA256, r.Size, digest, len(b))
	}
	o.remember(digest, b)
	o.markStored(uri)
	out, _ := json.Marshal(ref.Offloaded{Ref: r})
	return out, nil
}

func (o *Offloader) wasStored(uri string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stored[uri]
}

func (o *Offloader) markStored(uri string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stored == nil || len(o.stored) >= maxStored {
		o.stored = map[string]bool{}
	}
	o.stored[uri] = true
}

// Materialize returns the value raw stands for: raw itself when inline,
// the stored value when it is {"$ref": ...}.
func (o *Offloader) Materialize(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	r, isRef, err := ref.ParseOffloaded(raw)
	if err != nil || !isRef {
		return raw, err
	}
	return o.Load(ctx, r)
}

// Load reads an offloaded value, verified against its digest.
func (o *Offloader) Load(ctx context.Context, r ref.Ref) (json.RawMessage, error) {
	if r.Size > o.maxLoad {
		return nil, &TooLarge{Ref: r, Limit: o.maxLoad}
	}
	if raw, ok := o.cached(r.SHA256); ok {
		return raw, nil
	}
	var buf bytes.Buffer
	if err := o.st.Fetch(ctx, r, &buf); err != nil {
		return nil, sorted(fmt.Errorf("read the offloaded value %s: %w", r.URI, err))
	}
	if !json.Valid(buf.Bytes()) {
		return nil, fmt.Errorf("the offloaded value %s does not hold JSON", r.URI)
	}
	o.remember(r.SHA256, buf.Bytes())
	return buf.Bytes(), nil
}

// TooLarge is a value over the propeller's bound on what it reads.
type TooLarge struct {
	Ref   ref.Ref
	Limit int64
}

func (e *TooLarge) Error() string {
	return fmt.Sprintf("the value at %s is %d bytes, over the %d bytes the propeller reads into memory (--max-value-bytes): pass it whole to a task (a task reads it as a file) instead of computing with it in the workflow", e.Ref.URI, e.Ref.Size, e.Limit)
}

// Files lists the files of the directory dir references, each as a file
// reference, in the manifest's (path) order. The manifest is checked
// against dir's digest, so a directory changed after it was written is
// refused.
func (o *Offloader) Files(ctx context.Context, dir ref.Ref) ([]ref.Ref, []string, error) {
	if !dir.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory (its URI must end in /)", dir.URI)
	}
	// A map over a directory lists it every round: its manifest, checked
	// against the digest once, is kept by that digest (it cannot change).
	b, ok := o.cached("manifest:" + dir.SHA256)
	if !ok {
		var err error
		if b, err = o.readManifest(ctx, dir); err != nil {
			return nil, nil, err
		}
		o.remember("manifest:"+dir.SHA256, b)
	}
	m, err := ref.DecodeManifest(b)
	if err != nil {
		return nil, nil, err
	}
	refs := make([]ref.Ref, len(m.Files))
	paths := make([]string, len(m.Files))
	for i, e := range m.Files {
		refs[i] = ref.Ref{URI: dir.URI + e.Path, Size: e.Size, SHA256: e.SHA256}
		paths[i] = e.Path
	}
	return refs, paths, nil
}

// readManifest reads a directory's manifest and checks it against the
// directory's digest.
func (o *Offloader) readManifest(ctx context.Context, dir ref.Ref) ([]byte, error) {
	rd, err := o.st.Get(ctx, dir.URI+ref.ManifestName)
	if err != nil {
		return nil, sorted(fmt.Errorf("read the manifest of %s: %w", dir.URI, err))
	}
	b, err := io.ReadAll(io.LimitReader(rd, o.maxLoad+1))
	rd.Close()
	if err != nil {
		return nil, &Unavailable{Err: fmt.Errorf("read the manifest of %s: %w", dir.URI, err)}
	}
	if int64(len(b)) > o.maxLoad {
		return nil, fmt.Errorf("the manifest of %s is over %d bytes", dir.URI, o.maxLoad)
	}
	m, err := ref.DecodeManifest(b)
	if err != nil {
		return nil, err
	}
	if m.Digest() != dir.SHA256 {
		return nil, fmt.Errorf("the manifest of %s has digest %s, its reference says %s: the directory was changed after it was written", dir.URI, m.Digest(), dir.SHA256)
	}
	return b, nil
}

// Unavailable is the store failing (unreachable, refusing, timing out),
// as opposed to an object that is missing or not what its reference
// says: worth waiting for, not the workflow's fault.
type Unavailable struct{ Err error }

func (e *Unavailable) Error() string { return e.Err.Error() + " (the object store is unavailable)" }
func (e *Unavailable) Unwrap() error { return e.Err }

// sorted wraps a store error as Unavailable unless it says the object is
// missing or changed.
func sorted(err error) error {
	if IsNotFound(err) {
		return err
	}
	return &Unavailable{Err: err}
}

// IsNotFound reports whether err says an object is missing: an input's
// fault, not the store's.
func IsNotFound(err error) bool {
	var mm *store.Mismatch
	return store.IsNotFound(err) || errors.As(err, &mm)
}

func (o *Offloader) cached(sum string) (json.RawMessage, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	el, ok := o.bySum[sum]
	if !ok {
		return nil, false
	}
	o.lru.MoveToFront(el)
	return el.Value.(*entry).raw, true
}

func (o *Offloader) remember(sum string, raw []byte) {
	if int64(len(raw)) > o.capacity/4 {
		return // one value would push most others out
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if el, ok := o.bySum[sum]; ok {
		o.lru.MoveToFront(el)
		return
	}
	o.bySum[sum] = o.lru.PushFront(&entry{sum: sum, raw: raw})
	o.used += int64(len(raw))
	for o.used > o.capacity {
		last := o.lru.Back()
		e := last.Value.(*entry)
		o.lru.Remove(last)
		delete(o.bySum, e.sum)
		o.used -= int64(len(e.raw))
	}
}
