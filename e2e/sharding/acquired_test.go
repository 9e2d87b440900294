package sharding

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
)

// acquisition is a replica taking a partition, from its log.
type acquisition struct {
	Replica string
	At      time.Time
}

// acquisitions reads every replica's log and returns, per partition, the
// first "partition acquired" line after since. It tells a slow takeover
// (the manager or the lease) from a slow first write (the new owner's
// caches and queue).
func acquisitions(t *testing.T, env *harness.Env, since time.Time) map[int]acquisition {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(env.Dir, "logs", "rotor-propeller-*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no replica logs under %s: %v", env.Dir, err)
	}
	out := map[int]acquisition{}
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			t.Fatal(err)
		}
		replica := strings.TrimSuffix(filepath.Base(l), ".log")
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), `"partition acquired"`) {
				continue
			}
			var line struct {
				Time      time.Time `json:"time"`
				Partition int       `json:"partition"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil || !line.Time.After(since) {
				continue
			}
			if a, seen := out[line.Partition]; !seen || line.Time.Before(a.At) {
				out[line.Partition] = acquisition{Replica: replica, At: line.Time}
			}
		}
		f.Close()
	}
	return out
}
