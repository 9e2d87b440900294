package taskcache

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func baseTask() v1alpha1.TaskTemplate {
	return v1alpha1.TaskTemplate{
		Inputs:  map[string]v1alpha1.ValueType{"x": v1alpha1.TypeInteger},
		Outputs: map[string]v1alpha1.ValueType{"y": v1alpha1.TypeInteger},
		Container: &v1alpha1.ContainerSpec{Image: "busybox", Command: []string{"sh", "-c"}, Args: []string{"echo {{inputs.x}}"},
			Env: []corev1.EnvVar{{Name: "A", Value: "1"}}},
		Cache: &v1alpha1.TaskCache{Version: "v1"},
	}
}

// definitionFields says, for every field of a task (dotted path from
// TaskTemplate), whether it is in the definition hash and how to change
// it. A field the API gains without an entry here fails
// TestEveryTaskFieldIsClassified, so nobody adds one without deciding.
var definitionFields = map[string]struct {
	keyed  bool
	change func(*v1alpha1.TaskTemplate)
}{
	"Type":                 {true, func(t *v1alpha1.TaskTemplate) { t.Type = "other" }},
	"Inputs":               {true, func(t *v1alpha1.TaskTemplate) { t.Inputs = map[string]v1alpha1.ValueType{"x": v1alpha1.TypeString} }},
	"Outputs":              {true, func(t *v1alpha1.TaskTemplate) { t.Outputs["z"] = v1alpha1.TypeString }},
	"Container.Image":      {true, func(t *v1alpha1.TaskTemplate) { t.Container.Image = "alpine" }},
	"Container.Command":    {true, func(t *v1alpha1.TaskTemplate) { t.Container.Command = []string{"bash", "-c"} }},
	"Container.Args":       {true, func(t *v1alpha1.TaskTemplate) { t.Container.Args = []string{"echo {{inputs.x}}{{inputs.x}}"} }},
	"Container.WorkingDir": {true, func(t *v1alpha1.TaskTemplate) { t.Container.WorkingDir = "/w" }},
	"Container.Env":        {true, func(t *v1alpha1.TaskTemplate) { t.Container.Env[0].Value = "2" }},
	"Container.Resources": {false, func(t *v1alpha1.TaskTemplate) {
		t.Container.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
	}},
	"Container.SecurityContext": {false, func(t *v1alpha1.TaskTemplate) {
		t.Container.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)}
	}},
	"HTTP.URL":     {true, func(t *v1alpha1.TaskTemplate) { t.HTTP.URL = "https://b/" }},
	"HTTP.Method":  {true, func(t *v1alpha1.TaskTemplate) { t.HTTP.Method = "PUT" }},
	"HTTP.Headers": {true, func(t *v1alpha1.TaskTemplate) { t.HTTP.Headers = map[string]string{"X": "1"} }},
	"HTTP.Body":    {true, func(t *v1alpha1.TaskTemplate) { t.HTTP.Body = "{}" }},
	"HTTP.SecretHeaders": {true, func(t *v1alpha1.TaskTemplate) {
		t.HTTP.SecretHeaders = []v1alpha1.SecretHeader{{Name: "Authorization", SecretKeyRef: corev1.SecretKeySelector{Key: "token"}}}
	}},
	"HTTP.PollInterval": {false, func(t *v1alpha1.TaskTemplate) {
		t.HTTP.PollInterval = &metav1.Duration{Duration: time.Minute}
	}},
	"Metadata": {false, func(t *v1alpha1.TaskTemplate) {
		t.Metadata = &v1alpha1.TaskMetadata{Labels: map[string]string{"team": "a"}}
	}},
	"Retries": {false, func(t *v1alpha1.TaskTemplate) { t.Retries = 3 }},
	"Timeout": {false, func(t *v1alpha1.TaskTemplate) { t.Timeout = &metav1.Duration{Duration: time.Minute} }},
	"Backoff": {false, func(t *v1alpha1.TaskTemplate) {
		t.Backoff = &v1alpha1.Backoff{Max: &metav1.Duration{Duration: time.Minute}}
	}},
	"Pod": {false, func(t *v1alpha1.TaskTemplate) {
		t.Pod = &v1alpha1.PodOptions{NodeSelector: map[string]string{"gpu": "true"}, ServiceAccountName: "runner"}
	}},
	"Interruptible": {false, func(t *v1alpha1.TaskTemplate) { t.Interruptible = true }},
	// How the values travel (files and the data agent, or the outputs
	// JSON), not what they are.
	"OutputFiles":     {false, func(t *v1alpha1.TaskTemplate) { t.OutputFiles = true }},
	"ClusterSelector": {false, func(t *v1alpha1.TaskTemplate) { t.ClusterSelector = map[string]string{"region": "east"} }},
	// The version is a key segment of its own; serialize says how
	// executions of a key wait for each other.
	"Cache.Version":   {false, func(t *v1alpha1.TaskTemplate) { t.Cache.Version = "v2" }},
	"Cache.Serialize": {false, func(t *v1alpha1.TaskTemplate) { t.Cache.Serialize = true }},
}

// TestDefinitionKeysWhatDecidesOutputs changes one field of a task at a
// time: fields that decide what the task computes change the hash,
// fields that say how, where or how often it runs keep it.
func TestDefinitionKeysWhatDecidesOutputs(t *testing.T) {
	for name, f := range definitionFields {
		t.Run(name, func(t *testing.T) {
			base := baseTask()
			if strings.HasPrefix(name, "HTTP") {
				base.Type, base.Container = "http", nil
				base.HTTP = &v1alpha1.HTTPTask{URL: "https://a/", Method: "POST"}
			}
			changed := *base.DeepCopy()
			f.change(&changed)
			if reflect.DeepEqual(base, changed) {
				t.Fatal("the change changes nothing")
			}
			if keyed := Definition(&base) != Definition(&changed); keyed != f.keyed {
				t.Fatalf("changing %s changes the definition hash: %v, want %v", name, keyed, f.keyed)
			}
		})
	}
}

// TestEveryTaskFieldIsClassified walks TaskTemplate and its nested
// structs (container, http, cache): each leaf field must be in
// definitionFields.
func TestEveryTaskFieldIsClassified(t *testing.T) {
	nested := map[string]bool{"Container": true, "HTTP": true, "Cache": true}
	tt := reflect.TypeOf(v1alpha1.TaskTemplate{})
	for i := range tt.NumField() {
		f := tt.Field(i)
		if !nested[f.Name] {
			if _, ok := definitionFields[f.Name]; !ok {
				t.Errorf("TaskTemplate.%s is not classified: decide whether it is in taskcache.Definition", f.Name)
			}
			continue
		}
		st := f.Type.Elem()
		for j := range st.NumField() {
			if _, ok := definitionFields[f.Name+"."+st.Field(j).Name]; !ok {
				t.Errorf("TaskTemplate.%s.%s is not classified: decide whether it is in taskcache.Definition", f.Name, st.Field(j).Name)
			}
		}
	}
}

// TestDefinitionIgnoresSpelling: the default type spelled out, empty
// lists and maps, and map order do not change the hash.
func TestDefinitionIgnoresSpelling(t *testing.T) {
	a := baseTask()
	b := baseTask()
	b.Type = "pod"
	b.Metadata = &v1alpha1.TaskMetadata{}
	b.ClusterSelector = map[string]string{}
	b.Container.WorkingDir = ""
	b.Inputs = map[string]v1alpha1.ValueType{}
	for k, v := range a.Inputs {
		b.Inputs[k] = v
	}
	if Definition(&a) != Definition(&b) {
		t.Fatal("the same task spelled differently has another definition hash")
	}
}

// TestKeyLayouts: a key of today's layout round-trips through its path;
// a path of the old layout (no definition) still parses, for rotor cache
// ls and rm.
func TestKeyLayouts(t *testing.T) {
	task := baseTask()
	k, err := NewKey("team", "sq", &task, map[string]json.RawMessage{"x": json.RawMessage(`3`)})
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "v1" || len(k.Definition) != 64 || len(k.InputsHash) != 64 {
		t.Fatalf("key %+v", k)
	}
	if got, ok := parseEntryKey(k.path()); !ok || got != k {
		t.Fatalf("parse(%q) = %+v, %v; want %+v", k.path(), got, ok, k)
	}
	old := Key{Namespace: "team", Task: "sq", Version: "v1", InputsHash: k.InputsHash}
	if old.path() != "team/sq/v1/"+k.InputsHash {
		t.Fatalf("old layout path %q", old.path())
	}
	if got, ok := parseEntryKey(old.path()); !ok || got != old {
		t.Fatalf("parse(%q) = %+v, %v; want %+v", old.path(), got, ok, old)
	}
	if s := old.String(); s != "team/sq@v1~-#"+k.InputsHash[:12] {
		t.Fatalf("old key String %q", s)
	}
}

// TestFileInputsKeyOnContent: the same file content under two URIs (two
// runs of the producer) gives one key; other content, or the same bytes
// as a value of another type, another.
func TestFileInputsKeyOnContent(t *testing.T) {
	task := &v1alpha1.TaskTemplate{Inputs: map[string]v1alpha1.ValueType{"f": v1alpha1.TypeFile, "n": v1alpha1.TypeInteger}}
	sum := strings.Repeat("ab", 32)
	in := func(uri, digest string) map[string]json.RawMessage {
		return map[string]json.RawMessage{"n": json.RawMessage(`1`),
			"f": json.RawMessage(`{"uri": "` + uri + `", "size": 5, "sha256": "` + digest + `"}`)}
	}
	a, err := NewKey("team", "t", task, in("s3://b/team/wf1/u1/a/0/outputs/f", sum))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewKey("team", "t", task, in("s3://b/team/wf2/u2/a/0/outputs/f", sum))
	other, _ := NewKey("team", "t", task, in("s3://b/team/wf1/u1/a/0/outputs/f", strings.Repeat("cd", 32)))
	if a.InputsHash != b.InputsHash {
		t.Fatalf("the same content under two URIs: keys %s and %s", a, b)
	}
	if a.InputsHash == other.InputsHash {
		t.Fatalf("other content, same key %s", a)
	}
	asObject := &v1alpha1.TaskTemplate{Inputs: map[string]v1alpha1.ValueType{"f": v1alpha1.TypeObject, "n": v1alpha1.TypeInteger}}
	c, _ := NewKey("team", "t", asObject, in("s3://b/team/wf1/u1/a/0/outputs/f", sum))
	d, _ := NewKey("team", "t", asObject, in("s3://b/team/wf2/u2/a/0/outputs/f", sum))
	if c.InputsHash == d.InputsHash {
		t.Fatal("an object input that merely looks like a reference was keyed on its digest alone")
	}
}

// TestOffloadedValuesKeyOnContent: an offloaded value stored twice (two
// URIs, one digest) gives one key; another digest, another key; and the
// key differs from the inline value's shape.
func TestOffloadedValuesKeyOnContent(t *testing.T) {
	task := &v1alpha1.TaskTemplate{Inputs: map[string]v1alpha1.ValueType{"rows": v1alpha1.TypeArray}}
	in := func(uri, digest string) map[string]json.RawMessage {
		return map[string]json.RawMessage{"rows": json.RawMessage(`{"$ref": {"uri": "` + uri + `", "size": 9000, "sha256": "` + digest + `"}}`)}
	}
	sum := strings.Repeat("ab", 32)
	a, err := NewKey("team", "t", task, in("s3://b/team/wf1/u1/a/0/outputs/rows.json", sum))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewKey("team", "t", task, in("s3://b/team/wf2/u2/a/0/outputs/rows.json", sum))
	other, _ := NewKey("team", "t", task, in("s3://b/team/wf1/u1/a/0/outputs/rows.json", strings.Repeat("cd", 32)))
	if a.InputsHash != b.InputsHash {
		t.Fatalf("the same offloaded value under two URIs: keys %s and %s", a, b)
	}
	if a.InputsHash == other.InputsHash {
		t.Fatalf("another offloaded value, same key %s", a)
	}
}
