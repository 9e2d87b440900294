package taskcache

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/internal/etcdclient"
)

// Store is the etcd-backed cache. Safe for concurrent use.
type Store struct {
	client *clientv3.Client
	prefix string
}

// NewStore uses client with keys under prefix (ending in "/").
func NewStore(client *clientv3.Client, prefix string) *Store {
	return &Store{client: client, prefix: prefix}
}

func (s *Store) entryKey(k Key) string { return s.prefix + "entries/" + k.path() }
func (s *Store) resKey(k Key) string   { return s.prefix + "reservations/" + k.path() }

// Get returns the entry for k, if any.
func (s *Store) Get(ctx context.Context, k Key) (*Entry, bool, error) {
	ctx, cancel := etcdclient.Bound(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, s.entryKey(k))
	if err != nil {
		return nil, false, fmt.Errorf("read cache entry %s: %w", k, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	e := &Entry{Key: k}
	if err := json.Unmarshal(resp.Kvs[0].Value, e); err != nil {
		return nil, false, fmt.Errorf("cache entry %s is corrupt (delete it with rotor cache rm): %w", k, err)
	}
	return e, true, nil
}

// Put stores an entry and drops the key's reservation in one transaction.
func (s *Store) Put(ctx context.Context, e *Entry) error {
	ctx, cancel := etcdclient.Bound(ctx)
	defer cancel()
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.client.Txn(ctx).Then(
		clientv3.OpPut(s.entryKey(e.Key), string(b)),
		clientv3.OpDelete(s.resKey(e.Key)),
	).Commit()
	if err != nil {
		return fmt.Errorf("write cache entry %s: %w", e.Key, err)
	}
	return nil
}

// Reserve tries to make owner the one execution of k. It succeeds when
// nobody holds k, when owner already does (renewing it), or when the
// holder's reservation expired; otherwise it returns the holder.
func (s *Store) Reserve(ctx context.Context, k Key, owner string, now time.Time, ttl time.Duration) (bool, string, error) {
	ctx, cancel := etcdclient.Bound(ctx)
	defer cancel()
	key := s.resKey(k)
	want, _ := json.Marshal(reservation{Owner: owner, Expires: now.Add(ttl)})
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return false, "", fmt.Errorf("read reservation of %s: %w", k, err)
		}
		var cmp clientv3.Cmp
		if len(resp.Kvs) == 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		} else {
			var cur reservation
			_ = json.Unmarshal(resp.Kvs[0].Value, &cur)
			if cur.Owner != owner && now.Before(cur.Expires) {
				return false, cur.Owner, nil
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		tx, err := s.client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(want))).Commit()
		if err != nil {
			return false, "", fmt.Errorf("reserve %s: %w", k, err)
		}
		if tx.Succeeded {
			return true, owner, nil
		}
	}
	return false, "", fmt.Errorf("reserve %s: too much contention, will retry", k)
}

// Release drops owner's reservation of k, if it still holds it.
func (s *Store) Release(ctx context.Context, k Key, owner string) error {
	ctx, cancel := etcdclient.Bound(ctx)
	defer cancel()
	key := s.resKey(k)
	resp, err := s.client.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return err
	}
	var cur reservation
	_ = json.Unmarshal(resp.Kvs[0].Value, &cur)
	if cur.Owner != owner {
		return nil
	}
	_, err = s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	return err
}

// List returns the entries of a namespace, optionally of one task.
func (s *Store) List(ctx context.Context, namespace, task string) ([]*Entry, error) {
	if namespace == "" || strings.Contains(namespace, "/") {
		return nil, fmt.Errorf("a namespace is required")
	}
	p := s.prefix + "entries/" + namespace + "/"
	if task != "" {
		p += task + "/"
	}
	resp, err := s.client.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list cache of %s: %w", namespace, err)
	}
	var out []*Entry
	for _, kv := range resp.Kvs {
		k, ok := parseEntryKey(strings.TrimPrefix(string(kv.Key), s.prefix+"entries/"))
		if !ok {
			continue
		}
		e := &Entry{Key: k}
		if err := json.Unmarshal(kv.Value, e); err != nil {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// Delete removes entries of a namespace: all of one task, or one whose
// input hash starts with hashPrefix. It returns how many went.
func (s *Store) Delete(ctx context.Context, namespace, task, hashPrefix string) (int, error) {
	entries, err := s.List(ctx, namespace, task)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if hashPrefix != "" && !strings.HasPrefix(e.Key.InputsHash, hashPrefix) {
			continue
		}
		if _, err := s.client.Delete(ctx, s.entryKey(e.Key)); err != nil {
			return n, fmt.Errorf("delete %s: %w", e.Key, err)
		}
		n++
	}
	return n, nil
}
