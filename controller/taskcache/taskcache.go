// Package taskcache stores the outputs of cached tasks in etcd, per
// namespace, so a task that ran before with the same version and inputs is
// not run again. With serialize, a reservation lets one execution of a key
// run while the others wait for its result.
//
// Layout under the prefix (tenants never share a key):
//
//	PREFIX entries/NAMESPACE/TASK/VERSION/INPUTHASH       -> Entry (JSON)
//	PREFIX reservations/NAMESPACE/TASK/VERSION/INPUTHASH  -> reservation (JSON)
package taskcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Key identifies one cacheable execution.
type Key struct {
	Namespace string
	Task      string
	Version   string
	// InputsHash is the SHA-256 of the canonical inputs.
	InputsHash string
}

// NewKey hashes resolved inputs. Values are compacted JSON and keys sorted,
// so formatting never changes the key.
func NewKey(namespace, task, version string, inputs map[string]json.RawMessage) (Key, error) {
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		var v any
		if err := json.Unmarshal(inputs[k], &v); err != nil {
			return Key{}, fmt.Errorf("input %s: %w", k, err)
		}
		b, _ := json.Marshal(v) // map keys come out sorted
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(b), b)
	}
	return Key{Namespace: namespace, Task: task, Version: version, InputsHash: hex.EncodeToString(h.Sum(nil))}, nil
}

func (k Key) path() string {
	return k.Namespace + "/" + k.Task + "/" + k.Version + "/" + k.InputsHash
}

// String is a short form for messages.
func (k Key) String() string {
	return fmt.Sprintf("%s/%s@%s#%s", k.Namespace, k.Task, k.Version, k.InputsHash[:12])
}

// Entry is a cached result.
type Entry struct {
	Key     Key                        `json:"-"`
	Outputs map[string]json.RawMessage `json:"outputs"`
	// Source names the run that produced it: namespace/workflow/node.
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"createdAt"`
}

type reservation struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// parseEntryKey splits an entry key's path back into a Key.
func parseEntryKey(path string) (Key, bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 4 {
		return Key{}, false
	}
	return Key{Namespace: parts[0], Task: parts[1], Version: parts[2], InputsHash: parts[3]}, true
}
