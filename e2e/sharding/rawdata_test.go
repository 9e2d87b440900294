package sharding

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// TestManagerSweepsRawData: in a sharded install the leading manager runs
// the retention sweeper (given the propellers' raw-data flags): the
// objects of a workflow that does not exist are deleted, those of one
// that does are kept.
func TestManagerSweepsRawData(t *testing.T) {
	opts := localcluster.ShardingOptions{ManagerArgs: []string{"--raw-data-sweep-interval=1s", "--raw-data-sweep-grace=0s"}}
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 1, Sharded: true, Managers: 1, Sharding: opts, DataPlane: true})
	ctx := context.Background()
	const ns = "sweep-team"
	if err := env.CreateNamespaces(ctx, ns); err != nil {
		t.Fatal(err)
	}
	live, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, &v1alpha1.Workflow{
		ObjectMeta: metav1.ObjectMeta{Name: "live"},
		Spec: v1alpha1.WorkflowSpec{
			Tasks: map[string]v1alpha1.TaskTemplate{"t": {Container: &v1alpha1.ContainerSpec{Image: "busybox", Command: []string{"true"}}}},
			Nodes: []v1alpha1.Node{{Name: "a", Task: "t"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s3 := env.Env.S3
	st, err := store.Open(ctx, store.Config{URL: s3.URL(localcluster.RawDataBucket, "raw"), AccessKeyID: s3.AccessKeyID, SecretAccessKey: s3.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gone := ref.Join(st.Root(), ns, "gone", "uid-of-a-deleted-run", "a", "0", "outputs", "f")
	kept := ref.Join(st.Root(), ns, "live", string(live.UID), "a", "0", "outputs", "f")
	for _, uri := range []string{gone, kept} {
		if _, err := st.Put(ctx, uri, strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(uri string) bool {
		found := false
		_ = st.List(ctx, uri[:strings.LastIndex(uri, "/")+1], func(o store.Object) error {
			found = found || o.URI == uri
			return nil
		})
		return found
	}
	deadline := time.Now().Add(60 * time.Second)
	for exists(gone) {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the leading manager's sweeper had not deleted %s", gone)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a sweep or two more
	if !exists(kept) {
		t.Fatalf("the sweeper deleted %s, of a workflow that exists", kept)
	}
}
