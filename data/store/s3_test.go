package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// TestS3Store runs the Store contract against a real S3 server (the
// sandbox's SeaweedFS), then checks what only S3 shows: a 20 MiB object
// (several multipart parts) round-trips intact, wrong credentials and a
// missing bucket are refused with the store's root named.
func TestS3Store(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "weed")); err != nil {
		t.Fatalf("weed missing from %s: run 'make tools' first", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	env, srv, err := localcluster.StartS3Only(ctx, localcluster.Options{Dir: dir, BinDir: bin}, "rotor-data")
	if err != nil {
		t.Fatalf("start the S3 server (logs in %s): %v", filepath.Join(dir, "logs"), err)
	}
	defer env.Stop()
	open := func(url, key, secret string) *store.Store {
		s, err := store.Open(ctx, store.Config{URL: url, AccessKeyID: key, SecretAccessKey: secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open(srv.URL("rotor-data", "raw"), srv.AccessKeyID, srv.SecretAccessKey)
	if s.Root() != "s3://rotor-data/raw/" {
		t.Fatalf("Root = %s", s.Root())
	}
	store.Exercise(t, s)

	big := make([]byte, 20<<20)
	_, _ = rand.Read(big)
	uri := s.Root() + "team/wf/u1/big/0/outputs/blob"
	r, err := s.Put(ctx, uri, bytes.NewReader(big))
	if err != nil || r.Size != int64(len(big)) {
		t.Fatalf("Put 20 MiB: %+v, %v", r, err)
	}
	var back bytes.Buffer
	if err := s.Fetch(ctx, r, &back); err != nil || !bytes.Equal(back.Bytes(), big) {
		t.Fatalf("Fetch 20 MiB: %v (%d bytes back)", err, back.Len())
	}

	wrong := open(srv.URL("rotor-data", "raw"), srv.AccessKeyID, "not-the-secret")
	if err := wrong.Check(ctx); err == nil || !strings.Contains(err.Error(), "s3://rotor-data/raw/") {
		t.Fatalf("Check with a wrong secret: %v, want a refusal naming the store", err)
	}
	if _, err := wrong.Put(ctx, uri, strings.NewReader("x")); err == nil {
		t.Fatal("Put with a wrong secret succeeded")
	}
	missing := open(srv.URL("no-such-bucket", ""), srv.AccessKeyID, srv.SecretAccessKey)
	if err := missing.Check(ctx); err == nil {
		t.Fatal("Check of a missing bucket succeeded")
	}
}
