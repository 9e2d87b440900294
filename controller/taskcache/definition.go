package taskcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
)

// definition is the part of a task that decides its outputs for given
// inputs. Its JSON (struct fields in order, map keys sorted, empty fields
// left out) is what Definition hashes, so a new field here changes the
// key of every task only if it is set.
//
// In: the plugin (type, "pod" by default), the declared input and output
// names and types, the container's image, command, args, working
// directory and environment (references to Secrets and ConfigMaps as
// written, not the values they hold), and the http call's URL, method,
// headers and body. Templates such as {{inputs.x}} are hashed unexpanded:
// the inputs hash covers the values.
//
// Out, because they say how, where or how often the task runs, not what it
// computes: retries, backoff, timeout, metadata, pod options (node
// selector, tolerations, service account, priority), interruptible,
// cluster selector, container resources and security context, the http
// poll interval, and
// cache.serialize. cache.version is a key segment of its own.
type definition struct {
	Type       string                        `json:"type"`
	Inputs     map[string]v1alpha1.ValueType `json:"inputs,omitempty"`
	Outputs    map[string]v1alpha1.ValueType `json:"outputs,omitempty"`
	Image      string                        `json:"image,omitempty"`
	Command    []string                      `json:"command,omitempty"`
	Args       []string                      `json:"args,omitempty"`
	WorkingDir string                        `json:"workingDir,omitempty"`
	Env        []corev1.EnvVar               `json:"env,omitempty"`
	URL        string                        `json:"url,omitempty"`
	Method     string                        `json:"method,omitempty"`
	Headers    map[string]string             `json:"headers,omitempty"`
	Body       string                        `json:"body,omitempty"`
	// SecretHeaders by reference (which Secret, key and prefix), never
	// by value: another credential is another definition.
	SecretHeaders []v1alpha1.SecretHeader `json:"secretHeaders,omitempty"`
}

// definitionFormat starts the hashed text; bump it to orphan every entry
// on a change of the encoding.
const definitionFormat = "rotor.dev/task-definition/v1\n"

// Definition returns the hex SHA-256 of what of task decides its outputs
// (see definition for what is in and what is not).
func Definition(task *v1alpha1.TaskTemplate) string {
	d := definition{Type: dag.TaskType(task), Inputs: task.Inputs, Outputs: task.Outputs}
	if c := task.Container; c != nil {
		d.Image, d.Command, d.Args, d.WorkingDir, d.Env = c.Image, c.Command, c.Args, c.WorkingDir, c.Env
	}
	if h := task.HTTP; h != nil {
		d.URL, d.Method, d.Headers, d.Body, d.SecretHeaders = h.URL, h.Method, h.Headers, h.Body, h.SecretHeaders
	}
	b, err := json.Marshal(d)
	if err != nil {
		// Strings, string maps and EnvVars always marshal.
		panic("taskcache: task definition does not marshal: " + err.Error())
	}
	sum := sha256.Sum256(append([]byte(definitionFormat), b...))
	return hex.EncodeToString(sum[:])
}
