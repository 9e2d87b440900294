package processruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/data/agent"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
)

// TestDataAgent runs rotor-data as a pod's init container and native
// sidecar on the process runtime against the sandbox's real S3 server: the
// task's container reads its input file from /rotor/inputs and writes a
// file, a directory and a value to /rotor/outputs with no SDK; the sidecar
// uploads them once it has exited and reports references that fetch back
// byte for byte. A missing input object fails the init container with
// exit code 2 (the input's fault) and a message naming the object, and
// the task never runs.
func TestDataAgent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("volumes in the process runtime need mount namespaces: run this test as root, as this sandbox always does")
	}
	bin, _ := filepath.Abs(filepath.Join("..", "..", "bin"))
	dataBin := filepath.Join(bin, "rotor-data")
	for _, b := range []string{"rotor-data", "weed"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s missing from %s: run 'make tools build' first", b, bin)
		}
	}
	dir := t.TempDir()
	env, cs := startCluster(t, dir)
	ctx := context.Background()
	srv, err := env.StartS3(ctx, "rotor-data")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{URL: srv.URL("rotor-data", "raw"), AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cs, filepath.Join(dir, "node"), filepath.Join(dir, "agent.log"))

	upstream, _ := ref.Attempt{Namespace: namespace, Workflow: "wf", WorkflowUID: "u1", Node: "make", Attempt: 0}.Prefix(st.Root())
	text := strings.Repeat("the quick brown fox\n", 5000) // 100 kB
	in, err := st.Put(ctx, upstream+"outputs/text", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	prefix, _ := ref.Attempt{Namespace: namespace, Workflow: "wf", WorkflowUID: "u1", Node: "shout", Attempt: 0}.Prefix(st.Root())
	spec := agent.Spec{Store: srv.URL("rotor-data", "raw"), Prefix: prefix, Dir: mountPath,
		Inputs:  []agent.Input{{Name: "text", Kind: ref.KindFile, Ref: in}},
		Outputs: []agent.Output{{Name: "upper", Kind: ref.KindFile}, {Name: "parts", Kind: ref.KindDirectory}, {Name: "count", Kind: ref.KindValue}}}

	t.Run("inputs in, outputs out, by reference", func(t *testing.T) {
		began := time.Now()
		got := run(t, cs, dataPod("shout", dataBin, spec, srv.AccessKeyID, srv.SecretAccessKey,
			`tr a-z A-Z < $D/inputs/text > $D/outputs/upper
mkdir $D/outputs/parts && cd $D/outputs/parts && split -l 2500 $D/inputs/text part-
echo '{"parts": 2}' > $D/outputs/count`), corev1.PodSucceeded)
		// The postStart hook let the task start within milliseconds of the
		// sidecar, not after a probe period (1 s): the whole pod, from
		// create to Succeeded, takes less than that. (Container times in
		// the status are whole seconds: too coarse to tell.)
		if took := time.Since(began); took >= time.Second {
			t.Fatalf("the pod took %s from create to Succeeded: the sidecar's start cost a probe period", took)
		}
		sc := terminated(t, got.Status.InitContainerStatuses, "rotor-data-upload")
		if sc.ExitCode != 0 {
			t.Fatalf("upload sidecar exited %d: %s", sc.ExitCode, sc.Message)
		}
		var res agent.Result
		if err := json.Unmarshal([]byte(sc.Message), &res); err != nil {
			t.Fatalf("sidecar message %q: %v", sc.Message, err)
		}
		if string(res.Outputs["count"]) != `{"parts":2}` {
			t.Fatalf("count = %s, want the value inline", res.Outputs["count"])
		}
		var upper, parts ref.Ref
		_ = json.Unmarshal(res.Outputs["upper"], &upper)
		_ = json.Unmarshal(res.Outputs["parts"], &parts)
		var back bytes.Buffer
		if err := st.Fetch(ctx, upper, &back); err != nil || back.String() != strings.ToUpper(text) || !ref.Within(upper.URI, prefix) {
			t.Fatalf("upper %+v: %v, %d bytes back", upper, err, back.Len())
		}
		if parts.Files != 2 || parts.Size != int64(len(text)) || !ref.Within(parts.URI, prefix) {
			t.Fatalf("parts = %+v, want 2 files, %d bytes, under %s", parts, len(text), prefix)
		}
		var listed []string
		_ = st.List(ctx, parts.URI, func(o store.Object) error { listed = append(listed, strings.TrimPrefix(o.URI, parts.URI)); return nil })
		if strings.Join(listed, ",") != ref.ManifestName+",part-aa,part-ab" {
			t.Fatalf("objects under %s: %v", parts.URI, listed)
		}
	})

	t.Run("a missing input object fails the init container", func(t *testing.T) {
		gone := spec
		gone.Inputs = []agent.Input{{Name: "text", Kind: ref.KindFile, Ref: ref.Ref{URI: upstream + "outputs/never-written", Size: 1, SHA256: in.SHA256}}}
		got := run(t, cs, dataPod("no-input", dataBin, gone, srv.AccessKeyID, srv.SecretAccessKey, `touch $D/outputs/ran`), corev1.PodFailed)
		dl := terminated(t, got.Status.InitContainerStatuses, "rotor-data-download")
		if dl.ExitCode != 2 || !strings.Contains(dl.Message, "never-written") {
			t.Fatalf("download ended %d %q, want 2 naming the missing object", dl.ExitCode, dl.Message)
		}
		if main := terminated(t, got.Status.ContainerStatuses, "main"); main.Reason != "ContainerNotRun" {
			t.Fatalf("main container: %+v, want ContainerNotRun", main)
		}
	})
}

// dataPod is a task pod as the pod plugin will build it: the download
// init container, the upload sidecar with its startup probe, the task.
func dataPod(name, dataBin string, spec agent.Spec, key, secret, script string) *corev1.Pod {
	raw, _ := json.Marshal(spec)
	env := []corev1.EnvVar{{Name: "ROTOR_DATA_SPEC", Value: string(raw)},
		{Name: "ROTOR_DATA_ACCESS_KEY_ID", Value: key}, {Name: "ROTOR_DATA_SECRET_ACCESS_KEY", Value: secret}}
	mounts := []corev1.VolumeMount{{Name: "data", MountPath: mountPath}}
	always := corev1.ContainerRestartPolicyAlways
	download := corev1.Container{Name: "rotor-data-download", Image: "rotor-data", Command: []string{dataBin, "download"}, Env: env, VolumeMounts: mounts}
	upload := corev1.Container{Name: "rotor-data-upload", Image: "rotor-data", Command: []string{dataBin, "upload"}, Env: env, VolumeMounts: mounts,
		RestartPolicy: &always,
		Lifecycle:     &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{dataBin, "wait-ready"}}}},
		StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{dataBin, "ready"}}},
			PeriodSeconds: 1, FailureThreshold: 10}}
	main := shell("main", "mkdir -p $D/outputs\n"+script)
	p := pod(name, 30, []corev1.Container{download, upload}, main)
	return p
}
