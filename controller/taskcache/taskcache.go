// Package taskcache stores the outputs of cached tasks in etcd, per
// namespace, so a task that ran before with the same definition, version
// and inputs is not run again. With serialize, a reservation lets one
// execution of a key run while the others wait for its result.
//
// Layout under the prefix (tenants never share a key):
//
//	PREFIX entries/NAMESPACE/TASK/VERSION/DEFINITION/INPUTHASH       -> Entry (JSON)
//	PREFIX reservations/NAMESPACE/TASK/VERSION/DEFINITION/INPUTHASH  -> reservation (JSON)
//
// DEFINITION is the hash of what of the task decides its outputs (see
// Definition), so two different tasks of one name (in two workflows of a
// namespace) never share entries; TASK stays in the key so entries can be
// listed and deleted by task name. Entries written before the definition
// was part of the key (NAMESPACE/TASK/VERSION/INPUTHASH) are never read
// again (a cache miss), but are still listed and deleted, with an empty
// Definition.
package taskcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/ref"
)

// Key identifies one cacheable execution.
type Key struct {
	Namespace string
	Task      string
	Version   string
	// Definition is the hex SHA-256 of the task's definition (see
	// Definition); empty for an entry of the old layout.
	Definition string
	// InputsHash is the SHA-256 of the canonical inputs.
	InputsHash string
}

// NewKey is the key of running task, named name in the workflow's spec,
// with resolved inputs in namespace. Input values are compacted JSON and
// keys sorted, so formatting never changes the key.
func NewKey(namespace, name string, task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage) (Key, error) {
	h, err := inputsHash(contentOf(task, inputs))
	if err != nil {
		return Key{}, err
	}
	version := ""
	if task.Cache != nil {
		version = task.Cache.Version
	}
	return Key{Namespace: namespace, Task: name, Version: version, Definition: Definition(task), InputsHash: h}, nil
}

// contentOf replaces each file or directory input by what identifies its
// content (digest, size, file count), not where it lies: two runs given
// the same bytes under different URIs hit the same entry.
func contentOf(task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(inputs))
	for k, v := range inputs {
		out[k] = v
		// An offloaded value is keyed on its content, like a file: the
		// same value stored twice has two URIs and one digest.
		if r, isRef, _ := ref.ParseOffloaded(v); isRef {
			out[k], _ = json.Marshal(map[string]any{"content": map[string]any{"sha256": r.SHA256, "size": r.Size, "type": "offloaded"}})
			continue
		}
		if task == nil || !task.Inputs[k].IsData() {
			continue
		}
		var r struct {
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
			Files  int    `json:"files"`
		}
		if json.Unmarshal(v, &r) == nil && r.SHA256 != "" {
			out[k], _ = json.Marshal(map[string]any{"content": map[string]any{"sha256": r.SHA256, "size": r.Size, "files": r.Files, "type": task.Inputs[k]}})
		}
	}
	return out
}

func inputsHash(inputs map[string]json.RawMessage) (string, error) {
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		var v any
		if err := json.Unmarshal(inputs[k], &v); err != nil {
			return "", fmt.Errorf("input %s: %w", k, err)
		}
		b, _ := json.Marshal(v) // map keys come out sorted
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(b), b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (k Key) path() string {
	if k.Definition == "" { // the old layout
		return k.Namespace + "/" + k.Task + "/" + k.Version + "/" + k.InputsHash
	}
	return k.Namespace + "/" + k.Task + "/" + k.Version + "/" + k.Definition + "/" + k.InputsHash
}

// String is a short form for messages: namespace/task@version, then the
// definition's and the inputs' hashes shortened.
func (k Key) String() string {
	return fmt.Sprintf("%s/%s@%s~%s#%s", k.Namespace, k.Task, k.Version, Short(k.Definition), Short(k.InputsHash))
}

// Short is a hash cut to 12 characters for people; "-" for none.
func Short(hash string) string {
	switch {
	case hash == "":
		return "-"
	case len(hash) > 12:
		return hash[:12]
	}
	return hash
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

// parseEntryKey splits an entry key's path back into a Key, of either
// layout.
func parseEntryKey(path string) (Key, bool) {
	parts := strings.Split(path, "/")
	switch len(parts) {
	case 5:
		return Key{Namespace: parts[0], Task: parts[1], Version: parts[2], Definition: parts[3], InputsHash: parts[4]}, true
	case 4:
		return Key{Namespace: parts[0], Task: parts[1], Version: parts[2], InputsHash: parts[3]}, true
	}
	return Key{}, false
}
