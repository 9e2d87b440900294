// Package store opens Rotor's object store: where task data (files,
// directories, offloaded values) lives, behind gocloud.dev/blob. An
// install has one raw-data location (Config.URL); a tenant namespace may
// have its own. Objects are addressed by URI (s3://bucket/key), the form
// references carry (package ref), and a Store serves the URIs under its
// root only.
//
// Schemes: s3 (AWS S3 or any S3 server: SeaweedFS in the sandbox, MinIO,
// Ceph) and file (a local directory, for tests and single-node use). S3
// credentials are given explicitly (from a Kubernetes Secret), never read
// from the environment or an instance role, so a process serving several
// tenants cannot mix them up.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"github.com/rotor-dev/rotor/data/ref"
)

// Config says where a raw-data location is and how to reach it.
type Config struct {
	// URL is the location's root: s3://bucket[/prefix] or file:///dir.
	// For s3, query parameters endpoint (an S3 server's base URL, for
	// anything that is not AWS), region (default us-east-1) and
	// pathStyle=true (bucket in the path, as most S3 servers want; the
	// default with an endpoint).
	URL string
	// AccessKeyID and SecretAccessKey are the S3 credentials (a Secret's
	// keys accessKeyID and secretAccessKey). Both empty: anonymous.
	AccessKeyID, SecretAccessKey string
}

// Store is one opened location. Safe for concurrent use.
type Store struct {
	bucket *blob.Bucket
	// root is the location's URI with a trailing "/"; base is the
	// scheme://host part every URI of this store starts with, and
	// keyPrefix the key of root within the bucket.
	root, base, keyPrefix string
}

// Open opens the location cfg names. It does not reach the store: use
// Check for that.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("raw-data URL %q: %w", cfg.URL, err)
	}
	switch u.Scheme {
	case "s3":
		return openS3(ctx, u, cfg)
	case "file":
		return openFile(u)
	case "":
		return nil, fmt.Errorf("raw-data URL %q has no scheme: use s3://bucket/prefix or file:///dir", cfg.URL)
	}
	return nil, fmt.Errorf("raw-data URL %q: scheme %s is not supported (s3 and file are)", cfg.URL, u.Scheme)
}

func openS3(ctx context.Context, u *url.URL, cfg Config) (*Store, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("raw-data URL %q names no bucket: use s3://bucket/prefix", cfg.URL)
	}
	q := u.Query()
	for k := range q {
		if k != "endpoint" && k != "region" && k != "pathStyle" {
			return nil, fmt.Errorf("raw-data URL %q: unknown parameter %q (endpoint, region and pathStyle are known)", cfg.URL, k)
		}
	}
	region := q.Get("region")
	if region == "" {
		region = "us-east-1"
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, errors.New("S3 credentials need both an access key ID and a secret access key")
	}
	awsCfg := aws.Config{
		Region: region,
		// Only what an S3 request needs: third-party servers (SeaweedFS,
		// older MinIO) refuse the SDK's default trailing CRC checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.AccessKeyID != "" {
		awsCfg.Credentials = credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	} else {
		awsCfg.Credentials = aws.AnonymousCredentials{}
	}
	endpoint := q.Get("endpoint")
	pathStyle := q.Get("pathStyle") == "true" || (endpoint != "" && q.Get("pathStyle") != "false")
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	b, err := s3blob.OpenBucket(ctx, client, u.Host, &s3blob.Options{RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", u.Host, err)
	}
	prefix := strings.Trim(u.Path, "/")
	return newStore(b, "s3://"+u.Host, prefix), nil
}

func openFile(u *url.URL) (*Store, error) {
	if u.Host != "" {
		return nil, fmt.Errorf("file raw-data URL %q has a host: use file:///absolute/dir", u.String())
	}
	dir := u.Path
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raw-data directory %s: %w", dir, err)
	}
	// Writes go to a temporary file beside the object, renamed into place,
	// so a reader never sees half an object (beside it: os.TempDir may be
	// another mount, where rename fails); no sidecar metadata files.
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true, DirFileMode: 0o755, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		return nil, fmt.Errorf("open raw-data directory %s: %w", dir, err)
	}
	return newStore(b, "file://"+strings.TrimRight(dir, "/"), ""), nil
}

func newStore(b *blob.Bucket, base, keyPrefix string) *Store {
	keyPrefix = strings.Trim(keyPrefix, "/")
	root := base + "/"
	if keyPrefix != "" {
		root += keyPrefix + "/"
	}
	if keyPrefix != "" {
		keyPrefix += "/"
	}
	return &Store{bucket: b, root: root, base: base, keyPrefix: keyPrefix}
}

// Root is the location's URI, ending in "/": attempts' prefixes are
// built under it (ref.Attempt.Prefix).
func (s *Store) Root() string { return s.root }

// Close releases the bucket's resources.
func (s *Store) Close() error { return s.bucket.Close() }

// key turns a URI of this store into its bucket key; "/" stays at the
// end of a prefix's. The root of a store at a bucket's top is key "",
// which only List takes.
func (s *Store) key(uri string) (string, error) {
	if !strings.HasPrefix(uri, s.root) {
		return "", fmt.Errorf("%s is not under this store's root %s", uri, s.root)
	}
	k := strings.TrimPrefix(uri, s.base+"/")
	if (k == "" && uri != s.root) || strings.Contains(k, "//") {
		return "", fmt.Errorf("%s is not an object URI", uri)
	}
	return k, nil
}

// objectKey is key for an object's URI: one under the root, not a
// prefix (ending in "/").
func (s *Store) objectKey(uri string) (string, error) {
	if strings.HasSuffix(uri, "/") {
		return "", fmt.Errorf("%s names a prefix, not an object", uri)
	}
	return s.key(uri)
}

// URI is the URI of a bucket key.
func (s *Store) URI(key string) string { return s.base + "/" + key }

// Put streams r into the object at uri and returns its reference (size
// and sha256 of what was written). The object appears whole or not at
// all: an S3 upload completes only once every part is in, a file is
// renamed into place. A failed read of r aborts the write.
func (s *Store) Put(ctx context.Context, uri string, r io.Reader) (ref.Ref, error) {
	k, err := s.objectKey(uri)
	if err != nil {
		return ref.Ref{}, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, k, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return ref.Ref{}, fmt.Errorf("write %s: %w", uri, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), r)
	if err != nil {
		cancel() // a cancelled writer abandons the object instead of completing it
		_ = w.Close()
		return ref.Ref{}, fmt.Errorf("write %s: %w", uri, err)
	}
	if err := w.Close(); err != nil {
		return ref.Ref{}, fmt.Errorf("write %s: %w", uri, err)
	}
	return ref.Ref{URI: uri, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Get opens the object at uri for reading. A missing object is an error
// for which IsNotFound holds.
func (s *Store) Get(ctx context.Context, uri string) (io.ReadCloser, error) {
	k, err := s.objectKey(uri)
	if err != nil {
		return nil, err
	}
	rd, err := s.bucket.NewReader(ctx, k, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", uri, err)
	}
	return rd, nil
}

// Fetch copies the object at want.URI to w and checks it against want's
// size and digest; a mismatch is a *Mismatch error. Nothing is said
// about what reached w before a mismatch: write to a temporary place.
func (s *Store) Fetch(ctx context.Context, want ref.Ref, w io.Writer) error {
	rd, err := s.Get(ctx, want.URI)
	if err != nil {
		return err
	}
	defer rd.Close()
	h := sha256.New()
	// One byte past the size, to notice a longer object without reading
	// all of it.
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(rd, want.Size+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", want.URI, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if n != want.Size || got != want.SHA256 {
		return &Mismatch{URI: want.URI, WantSize: want.Size, GotSize: n, WantSHA256: want.SHA256, GotSHA256: got}
	}
	return nil
}

// Mismatch is an object whose bytes are not those its reference names.
type Mismatch struct {
	URI                   string
	WantSize, GotSize     int64
	WantSHA256, GotSHA256 string
}

func (m *Mismatch) Error() string {
	if m.WantSize != m.GotSize {
		return fmt.Sprintf("object %s has %d bytes (at least), its reference says %d: it was changed or truncated after it was written", m.URI, m.GotSize, m.WantSize)
	}
	return fmt.Sprintf("object %s has sha256 %s, its reference says %s: it was changed after it was written", m.URI, m.GotSHA256, m.WantSHA256)
}

// Object is one listed object.
type Object struct {
	URI      string
	Size     int64
	Modified time.Time
}

// List returns every object under prefix (a URI ending in "/"), sorted
// by key, calling each for each; each returning an error stops it.
func (s *Store) List(ctx context.Context, prefix string, each func(Object) error) error {
	k, err := s.key(prefix)
	if err != nil {
		return err
	}
	it := s.bucket.List(&blob.ListOptions{Prefix: k})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := each(Object{URI: s.URI(o.Key), Size: o.Size, Modified: o.ModTime}); err != nil {
			return err
		}
	}
}

// Delete removes the object at uri; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, uri string) error {
	k, err := s.objectKey(uri)
	if err != nil {
		return err
	}
	if err := s.bucket.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", uri, err)
	}
	return nil
}

// Check reaches the store: it lists one key under the root, which needs
// the bucket to exist and the credentials to allow listing.
func (s *Store) Check(ctx context.Context) error {
	if _, _, err := s.bucket.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: s.keyPrefix}); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("object store %s: %w", s.root, err)
	}
	return nil
}

// Health answers whether a store is reachable, asking it (Check, bounded
// by a few seconds) at most once per ttl: every data pod asks before it
// is created, and a store that does not answer must not cost a request
// per pod.
type Health struct {
	check func(context.Context) error
	ttl   time.Duration
	now   func() time.Time

	mu     sync.Mutex
	asked  time.Time
	result error
}

// NewHealth returns the Health of check (Store.Check) with answers kept
// for ttl.
func NewHealth(check func(context.Context) error, ttl time.Duration, now func() time.Time) *Health {
	return &Health{check: check, ttl: ttl, now: now}
}

// Err is nil while the store answered within the last ttl, else the
// reason it did not.
func (h *Health) Err(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.asked.IsZero() && h.now().Sub(h.asked) < h.ttl {
		return h.result
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	h.result, h.asked = h.check(cctx), h.now()
	return h.result
}

// IsNotFound reports whether err says an object does not exist.
func IsNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }
