package pod

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/agent"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/plugins"
)

var sum = strings.Repeat("cd", 32)

func dataTask(in json.RawMessage) *plugins.TaskContext {
	return &plugins.TaskContext{
		ID: plugins.TaskID{Namespace: "team", Workflow: "wf", WorkflowUID: "u1", Node: "b", Attempt: 1},
		Task: &v1alpha1.TaskTemplate{
			Inputs:    map[string]v1alpha1.ValueType{"table": v1alpha1.TypeFile, "n": v1alpha1.TypeInteger},
			Outputs:   map[string]v1alpha1.ValueType{"parts": v1alpha1.TypeDirectory, "rows": v1alpha1.TypeInteger},
			Container: &v1alpha1.ContainerSpec{Image: "busybox", Command: []string{"wc", "-l", "{{inputs.table}}"}},
		},
		Inputs: map[string]json.RawMessage{"table": in, "n": json.RawMessage(`3`)},
	}
}

var dataCfg = &DataConfig{StoreURL: "s3://raw/p?endpoint=http://127.0.0.1:9", Root: "s3://raw/p/", AccessKeyID: "k", SecretAccessKey: "s", Image: "rotor-data:v1",
	Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}}

// TestDataPodShape: a task with a file input and a directory output gets
// the shared volume, the download init container, then the upload
// sidecar (restartPolicy Always, postStart wait-ready),
// all unprivileged, with credentials from the copied Secret; the task
// sees its file input as a path, in its env and its args; the agent's
// spec names the attempt's prefix.
func TestDataPodShape(t *testing.T) {
	tc := dataTask(json.RawMessage(`{"uri": "s3://raw/p/team/wf/u1/a/0/outputs/table", "size": 3, "sha256": "` + sum + `"}`))
	pod, err := New(Config{Data: dataCfg}).Build(tc, "wf-b-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.InitContainers) != 2 || pod.Spec.InitContainers[0].Name != DownloadName || pod.Spec.InitContainers[1].Name != UploadName {
		t.Fatalf("init containers %v, want download then upload", names(pod.Spec.InitContainers))
	}
	up := pod.Spec.InitContainers[1]
	if up.RestartPolicy == nil || *up.RestartPolicy != corev1.ContainerRestartPolicyAlways || up.Lifecycle == nil ||
		strings.Join(up.Lifecycle.PostStart.Exec.Command, " ") != "/rotor-data wait-ready" || up.Image != "rotor-data:v1" {
		t.Fatalf("upload sidecar %+v", up)
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Resources.Requests.Cpu().MilliValue() != 50 || c.Resources.Limits.Memory().Value() != 256<<20 {
			t.Fatalf("%s's resources %+v, want the configured requests and limits", c.Name, c.Resources)
		}
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 {
			t.Fatalf("%s's security context %+v, want no privilege", c.Name, sc)
		}
		var spec agent.Spec
		for _, e := range c.Env {
			switch e.Name {
			case "ROTOR_DATA_SPEC":
				_ = json.Unmarshal([]byte(e.Value), &spec)
			case "ROTOR_DATA_SECRET_ACCESS_KEY":
				if e.Value != "" || e.ValueFrom.SecretKeyRef.Name != DataSecretName {
					t.Fatalf("%s gets its secret as %+v, want a reference to %s", c.Name, e, DataSecretName)
				}
			}
		}
		if spec.Prefix != "s3://raw/p/team/wf/u1/b/1/" || spec.Store != dataCfg.StoreURL || len(spec.Inputs) != 1 || len(spec.Outputs) != 1 ||
			spec.Outputs[0].Kind != ref.KindDirectory || spec.Inputs[0].Kind != ref.KindFile {
			t.Fatalf("%s's spec %+v", c.Name, spec)
		}
	}
	main := pod.Spec.Containers[0]
	if strings.Join(main.Command, " ") != "wc -l /rotor/inputs/table" {
		t.Fatalf("command %v, want the input's path rendered", main.Command)
	}
	env := map[string]string{}
	for _, e := range main.Env {
		env[e.Name] = e.Value
	}
	if env["ROTOR_INPUT_TABLE"] != "/rotor/inputs/table" || env["ROTOR_INPUT_N"] != "3" || env["ROTOR_OUTPUTS_DIR"] != "/rotor/outputs" {
		t.Fatalf("task env %v", env)
	}
	if len(main.VolumeMounts) != 1 || main.VolumeMounts[0].MountPath != DataMountPath || pod.Spec.TerminationGracePeriodSeconds == nil {
		t.Fatalf("task mounts %+v, grace %v", main.VolumeMounts, pod.Spec.TerminationGracePeriodSeconds)
	}

	// A task that moves nothing gets nothing.
	plain := dataTask(nil)
	plain.Task.Inputs, plain.Task.Outputs, plain.Inputs = nil, nil, nil
	plain.Task.Container.Command = []string{"true"}
	p, err := New(Config{Data: dataCfg}).Build(plain, "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.InitContainers)+len(p.Spec.Volumes) != 0 {
		t.Fatalf("a task without files has %d init containers and %d volumes", len(p.Spec.InitContainers), len(p.Spec.Volumes))
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// TestDataPodRefusals: without an object store a task with files cannot
// run, and an input outside the namespace's part of the store (another
// tenant's object) is refused before any pod.
func TestDataPodRefusals(t *testing.T) {
	tc := dataTask(json.RawMessage(`{"uri": "s3://raw/p/team/wf/u1/a/0/outputs/table", "size": 3, "sha256": "` + sum + `"}`))
	if _, err := New(Config{}).Build(tc, "x"); err == nil || !strings.Contains(err.Error(), "--raw-data-url") {
		t.Fatalf("no store: %v, want an error naming --raw-data-url", err)
	}
	for _, uri := range []string{"s3://raw/p/other-team/wf/u1/a/0/outputs/table", "s3://raw/p/team/../other/x", "s3://elsewhere/team/x"} {
		tc := dataTask(json.RawMessage(`{"uri": "` + uri + `", "size": 3, "sha256": "` + sum + `"}`))
		if _, err := New(Config{Data: dataCfg}).Build(tc, "x"); err == nil || !strings.Contains(err.Error(), "namespace team") {
			t.Errorf("input %s: %v, want it refused as outside namespace team", uri, err)
		}
	}
}

func sidecarDone(code int32, msg string) *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{ExitCode: code, Message: msg}
}

var uploadTask = &v1alpha1.TaskTemplate{Outputs: map[string]v1alpha1.ValueType{
	"parts": v1alpha1.TypeDirectory, "rows": v1alpha1.TypeInteger, "summary": v1alpha1.TypeObject, "label": v1alpha1.TypeString}}

// TestUploadOutcomes: the sidecar's references join the task's own
// outputs; one outside the attempt's prefix, a failure of the store and a
// failure of the task's outputs each end the attempt as they should.
func TestUploadOutcomes(t *testing.T) {
	prefix := "s3://raw/p/team/wf/u1/b/1/"
	good := `{"uri": "` + prefix + `outputs/parts/", "size": 8, "sha256": "` + sum + `", "files": 2}`
	ok := plugins.PhaseInfo{Phase: plugins.PhaseSucceeded, Outputs: []byte(`{"rows": 4}`)}
	got := withUploads(ok, sidecarDone(0, `{"outputs": {"parts": `+good+`}}`), prefix, uploadTask)
	var outs map[string]json.RawMessage
	if err := json.Unmarshal(got.Outputs, &outs); got.Phase != plugins.PhaseSucceeded || err != nil || string(outs["rows"]) != "4" || len(outs) != 2 {
		t.Fatalf("merged outcome %+v (%s)", got, got.Outputs)
	}
	// Values written as files: one inline, one offloaded under the prefix.
	off := `{"$ref": {"uri": "` + prefix + `outputs/summary.json", "size": 9000, "sha256": "` + sum + `"}}`
	got = withUploads(ok, sidecarDone(0, `{"outputs": {"summary": `+off+`, "label": "small"}}`), prefix, uploadTask)
	outs = nil
	if err := json.Unmarshal(got.Outputs, &outs); got.Phase != plugins.PhaseSucceeded || err != nil || !strings.Contains(string(outs["summary"]), prefix+"outputs/summary.json") || string(outs["label"]) != `"small"` {
		t.Fatalf("values from files: %+v (%s)", got, got.Outputs)
	}
	for name, c := range map[string]struct {
		term   *corev1.ContainerStateTerminated
		phase  plugins.Phase
		reason string
		says   string
	}{
		"outside the prefix":  {sidecarDone(0, `{"outputs": {"parts": {"uri": "s3://raw/p/team/wf/u1/a/0/outputs/x/", "size": 1, "sha256": "`+sum+`"}}}`), plugins.PhaseFailed, ReasonDataOutput, "not under the attempt's prefix"},
		"store failed":        {sidecarDone(1, `{"error": {"system": true, "message": "upload /rotor/outputs/parts/a: connection refused"}}`), plugins.PhaseSystemFailed, ReasonDataUpload, "connection refused"},
		"output missing":      {sidecarDone(2, `{"error": {"system": false, "message": "output parts: the task did not write /rotor/outputs/parts"}}`), plugins.PhaseFailed, ReasonDataOutput, "did not write"},
		"no report":           {nil, plugins.PhaseSystemFailed, ReasonDataUpload, "reported nothing"},
		"killed mid-upload":   {sidecarDone(137, ""), plugins.PhaseSystemFailed, ReasonDataUpload, "exited with code 137"},
		"offloaded elsewhere": {sidecarDone(0, `{"outputs": {"summary": {"$ref": {"uri": "s3://raw/p/team/other/u9/a/0/outputs/summary.json", "size": 9000, "sha256": "`+sum+`"}}}}`), plugins.PhaseFailed, ReasonDataOutput, "not under the attempt's prefix"},
		"written twice":       {sidecarDone(0, `{"outputs": {"rows": `+good+`}}`), plugins.PhaseFailed, ReasonDataOutput, "also wrote it"},
	} {
		got := withUploads(ok, c.term, prefix, uploadTask)
		if got.Phase != c.phase || got.Reason != c.reason || !strings.Contains(got.Message, c.says) {
			t.Errorf("%s: %v %s %q, want %v %s and %q", name, got.Phase, got.Reason, got.Message, c.phase, c.reason, c.says)
		}
	}
	if f := agentFailure(sidecarDone(2, `{"error": {"message": "download s3://raw/p/team/x: not found"}}`), ReasonDataDownload, ReasonDataInput); f == nil ||
		f.Phase != plugins.PhaseFailed || f.Reason != ReasonDataInput || !strings.Contains(f.Message, "s3://raw/p/team/x") {
		t.Fatalf("a missing input object: %+v", f)
	}
	if f := agentFailure(sidecarDone(0, ""), ReasonDataDownload, ReasonDataInput); f != nil {
		t.Fatalf("a download that succeeded: %+v", f)
	}
}

// agentSpec returns the agent's spec from a pod's upload or download
// container.
func agentSpec(t *testing.T, pod *corev1.Pod) agent.Spec {
	t.Helper()
	for _, c := range pod.Spec.InitContainers {
		for _, e := range c.Env {
			if e.Name == "ROTOR_DATA_SPEC" {
				var spec agent.Spec
				if err := json.Unmarshal([]byte(e.Value), &spec); err != nil {
					t.Fatal(err)
				}
				return spec
			}
		}
	}
	t.Fatalf("pod %s has no agent", pod.Name)
	return agent.Spec{}
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// TestOffloadedInputsAndOutputFiles: an offloaded input reaches the task
// as a file named by ROTOR_INPUT_X_FILE (never in its environment or
// command line: {{inputs.x}} is refused, naming the variable to read);
// an inline one stays in ROTOR_INPUT_X; outputFiles gives the pod the
// upload sidecar with its value outputs as optional, typed files; a task
// without either gets no agent at all.
func TestOffloadedInputsAndOutputFiles(t *testing.T) {
	off := json.RawMessage(`{"$ref": {"uri": "s3://raw/p/team/wf/u1/a/0/outputs/rows.json", "size": 1048576, "sha256": "` + sum + `"}}`)
	tc := &plugins.TaskContext{
		ID: plugins.TaskID{Namespace: "team", Workflow: "wf", WorkflowUID: "u1", Node: "m/3", Attempt: 0},
		Task: &v1alpha1.TaskTemplate{
			Inputs:      map[string]v1alpha1.ValueType{"rows": v1alpha1.TypeArray, "label": v1alpha1.TypeString},
			Outputs:     map[string]v1alpha1.ValueType{"summary": v1alpha1.TypeObject, "count": v1alpha1.TypeInteger},
			OutputFiles: true,
			Container:   &v1alpha1.ContainerSpec{Image: "busybox", Command: []string{"sh", "-c", "wc -c $ROTOR_INPUT_ROWS_FILE"}},
		},
		Inputs: map[string]json.RawMessage{"rows": off, "label": json.RawMessage(`"small"`)},
	}
	pod, err := New(Config{Data: dataCfg}).Build(tc, "wf-m-3-0")
	if err != nil {
		t.Fatal(err)
	}
	main := pod.Spec.Containers[0]
	if v, ok := envValue(main, "ROTOR_INPUT_ROWS_FILE"); !ok || v != "/rotor/inputs/rows" {
		t.Fatalf("ROTOR_INPUT_ROWS_FILE = %q (%v), want /rotor/inputs/rows", v, ok)
	}
	if v, ok := envValue(main, "ROTOR_INPUT_ROWS"); ok {
		t.Fatalf("the offloaded input is also in the environment: %q", v)
	}
	if v, _ := envValue(main, "ROTOR_INPUT_LABEL"); v != "small" {
		t.Fatalf("ROTOR_INPUT_LABEL = %q, want the inline value", v)
	}
	spec := agentSpec(t, pod)
	if len(spec.Inputs) != 1 || spec.Inputs[0].Kind != ref.KindValue || spec.Inputs[0].Ref.Size != 1048576 {
		t.Fatalf("agent inputs %+v, want the one offloaded value", spec.Inputs)
	}
	if len(spec.Outputs) != 1 || spec.Outputs[0] != (agent.Output{Name: "summary", Kind: ref.KindValue, Type: "object", Optional: true}) {
		t.Fatalf("agent outputs %+v, want summary as an optional object file (count is an integer: never a file)", spec.Outputs)
	}
	// A map item's prefix is one segment per node path.
	if spec.Prefix != "s3://raw/p/team/wf/u1/m.3/0/" {
		t.Fatalf("prefix %q", spec.Prefix)
	}

	tc.Task.Container.Args = []string{"{{inputs.rows}}"}
	if _, err := New(Config{Data: dataCfg}).Build(tc, "wf-m-3-0"); err == nil || !strings.Contains(err.Error(), "$ROTOR_INPUT_ROWS_FILE") {
		t.Fatalf("{{inputs.rows}} of an offloaded value: %v, want a refusal naming $ROTOR_INPUT_ROWS_FILE", err)
	}

	plain := &plugins.TaskContext{ID: tc.ID, Task: &v1alpha1.TaskTemplate{
		Inputs: map[string]v1alpha1.ValueType{"label": v1alpha1.TypeString}, Outputs: map[string]v1alpha1.ValueType{"summary": v1alpha1.TypeObject},
		Container: &v1alpha1.ContainerSpec{Image: "busybox"}}, Inputs: map[string]json.RawMessage{"label": json.RawMessage(`"x"`)}}
	pod, err = New(Config{Data: dataCfg}).Build(plain, "wf-a-0")
	if err != nil || hasDataAgent(pod) || len(pod.Spec.InitContainers) != 0 {
		t.Fatalf("a task with inline values only got the agent: %v, %v", err, names(pod.Spec.InitContainers))
	}
	// Without a store, an offloaded input is refused with what to set.
	tc.Task.Container.Args = nil
	if _, err := New(Config{}).Build(&plugins.TaskContext{ID: tc.ID, Task: tc.Task, Inputs: tc.Inputs}, "x"); err == nil || !strings.Contains(err.Error(), "--raw-data-url") {
		t.Fatalf("no store: %v", err)
	}
}
