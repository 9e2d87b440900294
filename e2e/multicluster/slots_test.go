package multicluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/cluster/capacity"
	"github.com/rotor-dev/rotor/e2e/harness"
)

// TestSlotsNeverOvershoot: three owners (replicas), each with its own
// etcd client, race 60 placements for a cluster with 5 slots. Exactly 5
// win; taking a held slot again is a no-op; a released slot is taken by
// the next; Collect frees only old slots whose pods are not in flight.
func TestSlotsNeverOvershoot(t *testing.T) {
	env := harness.New(t, harness.Options{NoRotor: true})
	ctx := context.Background()
	var owners []*capacity.Slots
	for i := 0; i < 3; i++ {
		owners = append(owners, capacity.New(env.Etcd(t), "/test-capacity", fmt.Sprintf("replica-%d", i)))
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Go(func() {
			ok, _, err := owners[i%3].Reserve(ctx, "east", fmt.Sprintf("team/pod-%02d", i), 5)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if n := won.Load(); n != 5 {
		t.Fatalf("%d placements won 5 slots", n)
	}
	// Find a holder; taking its slot again succeeds without a new slot.
	var holder string
	for i := 0; i < 60 && holder == ""; i++ {
		if ok, n, _ := owners[0].Reserve(ctx, "east", fmt.Sprintf("team/pod-%02d", i), 5); ok && n == 5 {
			holder = fmt.Sprintf("team/pod-%02d", i)
		}
	}
	if holder == "" {
		t.Fatal("no holder found again")
	}
	if ok, _, _ := owners[1].Reserve(ctx, "east", "team/late", 5); ok {
		t.Fatal("a sixth slot was taken")
	}
	if err := owners[2].Release(ctx, "east", holder); err != nil {
		t.Fatal(err)
	}
	if ok, n, _ := owners[1].Reserve(ctx, "east", "team/late", 5); !ok || n != 5 {
		t.Fatalf("after a release: took %v, %d slots; want the freed slot", ok, n)
	}
	// Nothing is in flight: with minAge 0 every slot is collected; with a
	// long minAge none is.
	if n, err := owners[0].Collect(ctx, "east", nil, time.Hour); err != nil || n != 0 {
		t.Fatalf("collect young slots: %d, %v", n, err)
	}
	if n, err := owners[0].Collect(ctx, "east", map[string]bool{"team/late": true}, 0); err != nil || n != 4 {
		t.Fatalf("collect: %d, %v; want the 4 slots whose pods are not in flight", n, err)
	}
}
