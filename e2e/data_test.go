package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// TestFilesAndDirectories: a task writes a file and a directory to
// /rotor/outputs; its downstream task reads them from /rotor/inputs (as
// $ROTOR_INPUT_<NAME> and {{inputs.<name>}}) and counts them. The status
// holds references under the producing attempt's prefix (no bytes), and
// the objects they name are in the S3 server with those sizes and digests.
func TestFilesAndDirectories(t *testing.T) {
	ns := namespace(t)
	wf := submit(t, ns, `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: files}
spec:
  tasks:
    produce:
      outputs: {report: file, shards: directory}
      container:
        image: busybox
        command: [sh, -ec, 'seq 1 20000 > $ROTOR_OUTPUTS_DIR/report; mkdir $ROTOR_OUTPUTS_DIR/shards; cd $ROTOR_OUTPUTS_DIR/shards; seq 1 20000 | split -l 5000 - part-']
    consume:
      inputs: {report: file, shards: directory}
      outputs: {lines: integer, files: integer, sum: integer}
      container:
        image: busybox
        command: [sh, -ec, 'echo "{\"lines\": $(wc -l < $ROTOR_INPUT_REPORT), \"files\": $(ls {{inputs.shards}} | wc -l), \"sum\": $(cat {{inputs.shards}}/part-* | awk "{s+=\$1} END {print s}")}" > $ROTOR_OUTPUT_FILE']
  nodes:
    - {name: make, task: produce}
    - name: count
      task: consume
      inputs: {report: "{{nodes.make.outputs.report}}", shards: "{{nodes.make.outputs.shards}}"}
  outputs:
    lines: "{{nodes.count.outputs.lines}}"
    sum: "{{nodes.count.outputs.sum}}"
`)
	got := waitDone(t, wf, 90*time.Second)
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s: %s; nodes %+v", got.Status.Phase, got.Status.Message, got.Status.Nodes)
	}
	if l, s := string(got.Status.Outputs["lines"].Raw), string(got.Status.Outputs["sum"].Raw); l != "20000" || s != "200010000" {
		t.Fatalf("outputs lines %s, sum %s; want 20000 and 200010000", l, s)
	}
	if f := string(got.Status.Nodes["count"].Outputs["files"].Raw); f != "4" {
		t.Fatalf("the consumer saw %s shard files, want 4", f)
	}
	mk := got.Status.Nodes["make"]
	var report, shards ref.Ref
	if err := json.Unmarshal(mk.Outputs["report"].Raw, &report); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mk.Outputs["shards"].Raw, &shards); err != nil {
		t.Fatal(err)
	}
	st, storeURL := rawData(t)
	prefix, _ := ref.Attempt{Namespace: ns, Workflow: "files", WorkflowUID: string(got.UID), Node: "make", Attempt: 0}.Prefix(st.Root())
	if !ref.Within(report.URI, prefix) || !ref.Within(shards.URI, prefix) || shards.Files != 4 || report.Size != shards.Size {
		t.Fatalf("references report %+v, shards %+v; want both under %s, 4 files, equal sizes", report, shards, prefix)
	}
	var back strings.Builder
	if err := st.Fetch(context.Background(), report, &back); err != nil || !strings.HasPrefix(back.String(), "1\n2\n3\n") {
		t.Fatalf("the report object: %v (%.20q)", err, back.String())
	}
	// The status holds references, not the 100 kB of data.
	b, _ := json.Marshal(got.Status)
	if len(b) > 8<<10 {
		t.Fatalf("the status is %d bytes: data went into it", len(b))
	}
	// rotor get shows where each file and directory is and how big.
	out, code := rotorCLI(t, "get", "files", "-n", ns)
	if code != 0 || !strings.Contains(out, "DATA") || !strings.Contains(out, report.URI) || !strings.Contains(out, "4 files") || !strings.Contains(out, "make.report") {
		t.Fatalf("rotor get (exit %d) does not list the data outputs %s and %s:\n%s", code, report.URI, shards.URI, out)
	}
	// rotor outputs --download fetches them back, verified, and writes
	// the other values as JSON.
	dl := t.TempDir()
	out, code = rotorCLI(t, "outputs", "files", "-n", ns, "--download", dl, "--store", storeURL)
	if code != 0 || !strings.Contains(out, "downloaded make.report") {
		t.Fatalf("rotor outputs --download: exit %d\n%s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(dl, "make", "report"))
	if err != nil || !strings.HasPrefix(string(b), "1\n2\n") || int64(len(b)) != report.Size {
		t.Fatalf("downloaded report: %d bytes (%v), want %d", len(b), err, report.Size)
	}
	shardFiles, _ := filepath.Glob(filepath.Join(dl, "make", "shards", "part-*"))
	if len(shardFiles) != 4 {
		t.Fatalf("downloaded shards: %v, want 4 files", shardFiles)
	}
	if b, err := os.ReadFile(filepath.Join(dl, "count", "lines.json")); err != nil || strings.TrimSpace(string(b)) != "20000" {
		t.Fatalf("count.lines.json: %q (%v)", b, err)
	}
	// One node only, and a node that does not exist.
	if out, code := rotorCLI(t, "outputs", "files", "count", "-n", ns); code != 0 || strings.Contains(out, "make") || !strings.Contains(out, "lines") {
		t.Fatalf("rotor outputs files count: exit %d\n%s", code, out)
	}
	if out, code := rotorCLI(t, "outputs", "files", "nope", "-n", ns); code == 0 || !strings.Contains(out, "no node") {
		t.Fatalf("rotor outputs of a missing node: exit %d\n%s", code, out)
	}
}

// TestMissingInputObject: a file input whose object is not in the store
// fails its node with the object named (the input's fault: no retry is
// spent on the store), and the task never runs.
func TestMissingInputObject(t *testing.T) {
	ns := namespace(t)
	uri := "s3://" + localcluster.RawDataBucket + "/raw/" + ns + "/gone/0/x/0/outputs/never-written"
	wf := submit(t, ns, `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: missing}
spec:
  inputs:
    table: {type: file, value: {uri: "`+uri+`", size: 3, sha256: "`+strings.Repeat("ab", 32)+`"}}
  tasks:
    read:
      inputs: {table: file}
      container: {image: busybox, command: [cat, "{{inputs.table}}"]}
  nodes:
    - {name: r, task: read, inputs: {table: "{{workflow.inputs.table}}"}}
`)
	got := waitDone(t, wf, 60*time.Second)
	n := got.Status.Nodes["r"]
	if got.Status.Phase != v1alpha1.WorkflowFailed || n.Reason != "DataInputInvalid" || !strings.Contains(n.Message, "never-written") {
		t.Fatalf("workflow %s, node %s %q; want Failed, DataInputInvalid naming the object", got.Status.Phase, n.Reason, n.Message)
	}
	if len(n.Attempts) != 1 || n.Attempts[0].System {
		t.Fatalf("attempts %+v, want one, not a system failure", n.Attempts)
	}
}

// TestCacheHitOnFileContent: two workflows whose producers write the same
// bytes (under different URIs: different workflows) feed a cached task;
// the second run's consumer is a cache hit with no pod, as its input's
// content is the same.
func TestCacheHitOnFileContent(t *testing.T) {
	ns := namespace(t)
	const src = `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    make:
      outputs: {f: file}
      container: {image: busybox, command: [sh, -ec, 'seq 1 100 > $ROTOR_OUTPUTS_DIR/f']}
    count:
      inputs: {f: file}
      outputs: {lines: integer}
      cache: {version: v1}
      container: {image: busybox, command: [sh, -ec, 'echo "{\"lines\": $(wc -l < {{inputs.f}})}" > $ROTOR_OUTPUT_FILE']}
  nodes:
    - {name: make, task: make}
    - {name: count, task: count, inputs: {f: "{{nodes.make.outputs.f}}"}}
`
	first := waitDone(t, submit(t, ns, strings.Replace(src, "NAME", "first", 1)), 60*time.Second)
	second := waitDone(t, submit(t, ns, strings.Replace(src, "NAME", "second", 1)), 60*time.Second)
	for _, wf := range []*v1alpha1.Workflow{first, second} {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Nodes["count"].Outputs["lines"].Raw) != "100" {
			t.Fatalf("%s: %s, lines %s", wf.Name, wf.Status.Phase, wf.Status.Nodes["count"].Outputs["lines"].Raw)
		}
	}
	var a, b ref.Ref
	_ = json.Unmarshal(first.Status.Nodes["make"].Outputs["f"].Raw, &a)
	_ = json.Unmarshal(second.Status.Nodes["make"].Outputs["f"].Raw, &b)
	if a.URI == b.URI || a.SHA256 != b.SHA256 {
		t.Fatalf("the producers' files %s and %s: want two URIs with one digest", a.URI, b.URI)
	}
	if r := first.Status.Nodes["count"].Reason; r == "CacheHit" {
		t.Fatal("the first run's consumer was a cache hit: the test proves nothing")
	}
	if r := second.Status.Nodes["count"].Reason; r != "CacheHit" {
		t.Fatalf("the second run's consumer: reason %q, want CacheHit on the same content", r)
	}
	if n := podsOf(t, second); n != 1 {
		t.Fatalf("the second run created %d pods, want 1 (the producer's)", n)
	}
}

// TestUploadKilledMidway: the upload sidecar is killed (SIGKILL) while it
// stores a directory of 100 files; the attempt is a system failure (no
// user retry spent), the next attempt uploads again under its own prefix,
// and the status references only that attempt's objects. The first
// attempt's half-written directory has no manifest: nothing names it.
func TestUploadKilledMidway(t *testing.T) {
	ns := namespace(t)
	wf := submit(t, ns, `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: killed}
spec:
  tasks:
    make:
      outputs: {d: directory}
      container: {image: busybox, command: [sh, -ec, 'mkdir $ROTOR_OUTPUTS_DIR/d; for i in $(seq 1 100); do head -c 2000000 /dev/urandom > $ROTOR_OUTPUTS_DIR/d/f$i; done']}
  nodes: [{name: make, task: make}]
`)
	st, _ := rawData(t)
	first, _ := ref.Attempt{Namespace: ns, Workflow: "killed", WorkflowUID: string(wf.UID), Node: "make", Attempt: 0}.Prefix(st.Root())
	// Wait (60 s at most) for the first objects of attempt 0, then kill
	// its sidecar, found by the attempt's prefix in its environment.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := 0
		_ = st.List(context.Background(), first, func(store.Object) error { n++; return nil })
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no object of attempt 0 under %s within 60s", first)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid := harness.FindProcess(t, "rotor-data", "upload", first)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the upload sidecar %d: %v", pid, err)
	}
	got := waitDone(t, wf, 120*time.Second)
	n := got.Status.Nodes["make"]
	if got.Status.Phase != v1alpha1.WorkflowSucceeded || len(n.Attempts) != 2 {
		t.Fatalf("workflow %s with %d attempts (%+v); want Succeeded after 2", got.Status.Phase, len(n.Attempts), n.Attempts)
	}
	if a := n.Attempts[0]; !a.System || a.Reason != "DataUploadFailed" {
		if a.Phase == v1alpha1.NodeSucceeded {
			t.Fatal("attempt 0's upload ended before it was killed: the test proves nothing (make the directory larger)")
		}
		t.Fatalf("attempt 0: %s %q (system %v), want a system failure DataUploadFailed", a.Reason, a.Message, a.System)
	}
	second, _ := ref.Attempt{Namespace: ns, Workflow: "killed", WorkflowUID: string(got.UID), Node: "make", Attempt: 1}.Prefix(st.Root())
	var d ref.Ref
	_ = json.Unmarshal(n.Outputs["d"].Raw, &d)
	if !ref.Within(d.URI, second) || d.Files != 100 {
		t.Fatalf("the output %+v, want 100 files under attempt 1's %s", d, second)
	}
	var left, manifests int
	_ = st.List(context.Background(), first, func(o store.Object) error {
		left++
		if strings.HasSuffix(o.URI, ref.ManifestName) {
			manifests++
		}
		return nil
	})
	if left == 0 || left >= 101 || manifests != 0 {
		t.Fatalf("attempt 0 left %d objects (%d manifests): want some of its files and no manifest", left, manifests)
	}
}

// rawData opens the e2e environment's raw-data store as the propeller
// does (closed when the test ends) and returns it with its URL.
func rawData(t *testing.T) (*store.Store, string) {
	t.Helper()
	s3 := env.Env.S3
	url := s3.URL(localcluster.RawDataBucket, "raw")
	st, err := store.Open(context.Background(), store.Config{URL: url, AccessKeyID: s3.AccessKeyID, SecretAccessKey: s3.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, url
}

// TestOffloadedJSON: a task writes a 1 MiB JSON array as a file
// (outputFiles); the status holds a reference under its attempt's
// prefix, the object is in the S3 server with that digest, and the
// Workflow object stays small. The downstream task reads the value from
// $ROTOR_INPUT_ROWS_FILE (the reference passed whole, never in its
// environment); a map runs over a second, 5 KB offloaded list, read back
// by the propeller; its gathered outputs come out right. rotor get lists
// the offloaded value; rotor outputs --download writes its JSON.
func TestOffloadedJSON(t *testing.T) {
	ns := namespace(t)
	const rows = 45000 // 24 bytes each: just over 1 MiB
	wf := submit(t, ns, `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: big-json}
spec:
  tasks:
    produce:
      outputFiles: true
      outputs: {rows: array, names: array, n: integer}
      container:
        image: busybox
        command:
          - sh
          - -ec
          - |
            awk 'BEGIN{printf "["; for(i=0;i<45000;i++){if(i)printf ","; printf "\"row-%06d-abcdefghij\"", i}; printf "]"}' > $ROTOR_OUTPUTS_DIR/rows
            awk 'BEGIN{printf "["; for(i=0;i<12;i++){if(i)printf ","; printf "\"%s\"", sprintf("%0400d", i)}; printf "]"}' > $ROTOR_OUTPUTS_DIR/names
            echo '{"n": 45000}' > $ROTOR_OUTPUT_FILE
    consume:
      inputs: {rows: array}
      outputs: {count: integer, bytes: integer, inEnv: integer}
      container:
        image: busybox
        command:
          - sh
          - -ec
          - |
            commas=$(tr -cd , < $ROTOR_INPUT_ROWS_FILE | wc -c)
            bytes=$(wc -c < $ROTOR_INPUT_ROWS_FILE)
            inenv=$(env | grep -c '^ROTOR_INPUT_ROWS=' || true)
            echo "{\"count\": $((commas + 1)), \"bytes\": $bytes, \"inEnv\": $inenv}" > $ROTOR_OUTPUT_FILE
    measure:
      inputs: {name: string}
      outputs: {len: integer}
      container:
        image: busybox
        command: [sh, -ec, 'echo "{\"len\": ${#ROTOR_INPUT_NAME}}" > $ROTOR_OUTPUT_FILE']
  nodes:
    - {name: make, task: produce}
    - {name: count, task: consume, inputs: {rows: "{{nodes.make.outputs.rows}}"}}
    - {name: m, map: {task: measure, item: name, over: "{{nodes.make.outputs.names}}"}}
  outputs:
    count: "{{nodes.count.outputs.count}}"
    lens: "{{nodes.m.outputs.len}}"
`)
	got := waitDone(t, wf, 120*time.Second)
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s: %s; nodes %+v", got.Status.Phase, got.Status.Message, got.Status.Nodes)
	}
	mk := got.Status.Nodes["make"]
	big, isRef, err := ref.ParseOffloaded(mk.Outputs["rows"].Raw)
	if err != nil || !isRef || big.Size <= 1<<20 {
		t.Fatalf("make's rows = %.120s (%v); want a reference to over 1 MiB", mk.Outputs["rows"].Raw, err)
	}
	if n := string(mk.Outputs["n"].Raw); n != "45000" {
		t.Fatalf("make's n (from the outputs JSON beside the files) = %s, want 45000", n)
	}
	st, storeURL := rawData(t)
	prefix, _ := ref.Attempt{Namespace: ns, Workflow: "big-json", WorkflowUID: string(got.UID), Node: "make", Attempt: 0}.Prefix(st.Root())
	if !ref.Within(big.URI, prefix) {
		t.Fatalf("rows at %s, not under make's prefix %s", big.URI, prefix)
	}
	var back strings.Builder
	if err := st.Fetch(context.Background(), big, &back); err != nil || !strings.HasPrefix(back.String(), `["row-000000-abcdefghij","row-000001-`) {
		t.Fatalf("the rows object: %v (%.40q)", err, back.String())
	}
	c := got.Status.Nodes["count"].Outputs
	if string(c["count"].Raw) != "45000" || string(c["bytes"].Raw) != strconv.FormatInt(big.Size, 10) || string(c["inEnv"].Raw) != "0" {
		t.Fatalf("the consumer saw count %s, bytes %s (want 45000, %d) and the value in its environment %s times (want 0)", c["count"].Raw, c["bytes"].Raw, big.Size, c["inEnv"].Raw)
	}
	if _, isRef, _ := ref.ParseOffloaded(mk.Outputs["names"].Raw); !isRef {
		t.Fatalf("make's 5 KB names stayed inline: %.80s", mk.Outputs["names"].Raw)
	}
	for i := 0; i < 12; i++ {
		if p := got.Status.Nodes["m/"+strconv.Itoa(i)].Phase; p != v1alpha1.NodeSucceeded {
			t.Fatalf("map item %d is %s, want Succeeded", i, p)
		}
	}
	if l := string(got.Status.Outputs["lens"].Raw); l != "["+strings.TrimSuffix(strings.Repeat("400,", 12), ",")+"]" {
		t.Fatalf("output lens = %s, want twelve 400s", l)
	}
	// The whole Workflow object, as etcd holds it, stays small.
	raw, err := env.Rotor.RotorV1alpha1().Workflows(ns).Get(context.Background(), "big-json", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := json.Marshal(raw)
	if len(obj) > 32<<10 {
		t.Fatalf("the Workflow object is %d bytes for %d bytes of data", len(obj), big.Size)
	}
	t.Logf("Workflow object %d bytes; rows %d bytes offloaded", len(obj), big.Size)
	out, code := rotorCLI(t, "get", "big-json", "-n", ns)
	if code != 0 || !strings.Contains(out, "make.rows") || !strings.Contains(out, big.URI) || !strings.Contains(out, "MiB") {
		t.Fatalf("rotor get (exit %d) does not list the offloaded rows %s:\n%s", code, big.URI, out)
	}
	dl := t.TempDir()
	if out, code := rotorCLI(t, "outputs", "big-json", "make", "-n", ns, "--download", dl, "--store", storeURL); code != 0 {
		t.Fatalf("rotor outputs --download: exit %d\n%s", code, out)
	}
	var list []string
	if b, err := os.ReadFile(filepath.Join(dl, "make", "rows.json")); err != nil || json.Unmarshal(b, &list) != nil || len(list) != rows {
		t.Fatalf("downloaded rows.json: %d items (%v), want %d", len(list), err, rows)
	}
}

// objectsUnder lists the store's objects under a workflow's prefix.
func objectsUnder(t *testing.T, st *store.Store, ns, name, uid string) []string {
	t.Helper()
	p, err := ref.WorkflowPrefix(st.Root(), ns, name, uid)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := st.List(context.Background(), p, func(o store.Object) error {
		out = append(out, strings.TrimPrefix(o.URI, p))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSweeperDeletesOnlyWhatItMay: the lone propeller's retention sweeper
// (every second in this sandbox) deletes the raw data of a deleted
// workflow except the object a live cache entry names; keeps a live
// workflow's; and deletes a finished workflow's once its namespace's
// retention (annotation rotor.dev/raw-data-retention) has passed, while
// the Workflow itself stays.
func TestSweeperDeletesOnlyWhatItMay(t *testing.T) {
	ctx := context.Background()
	ns, short := namespace(t), namespace(t)
	const src = `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    make:
      outputs: {f: file}
      container: {image: busybox, command: [sh, -ec, 'seq 1 NAMELEN > $ROTOR_OUTPUTS_DIR/f']}
    model:
      outputs: {m: file}
      cache: {version: v1}
      container: {image: busybox, command: [sh, -ec, 'echo NAME > $ROTOR_OUTPUTS_DIR/m']}
  nodes:
    - {name: make, task: make}
    - {name: train, task: model}
`
	run := func(ns, name string) *v1alpha1.Workflow {
		t.Helper()
		s := strings.ReplaceAll(strings.ReplaceAll(src, "NAMELEN", strconv.Itoa(len(name)*1000)), "NAME", name)
		wf := waitDone(t, submit(t, ns, s), 60*time.Second)
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s: %s: %s", name, wf.Status.Phase, wf.Status.Message)
		}
		return wf
	}
	st, _ := rawData(t)
	gone, live := run(ns, "gone"), run(ns, "live")
	for _, wf := range []*v1alpha1.Workflow{gone, live} {
		if objs := objectsUnder(t, st, ns, wf.Name, string(wf.UID)); len(objs) < 2 {
			t.Fatalf("%s wrote %v, want its two outputs in the store: the test would prove nothing", wf.Name, objs)
		}
	}
	var cached ref.Ref
	_ = json.Unmarshal(gone.Status.Nodes["train"].Outputs["m"].Raw, &cached)
	if err := env.Rotor.RotorV1alpha1().Workflows(ns).Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The deleted workflow's file goes; the cached model stays.
	deadline := time.Now().Add(60 * time.Second)
	for {
		objs := objectsUnder(t, st, ns, "gone", string(gone.UID))
		if len(objs) == 1 {
			if want := strings.TrimPrefix(cached.URI, st.Root()+ns+"/gone/"+string(gone.UID)+"/"); objs[0] != want {
				t.Fatalf("what is left of the deleted workflow: %v, want only the cached %s", objs, want)
			}
			break
		}
		if len(objs) == 0 {
			t.Fatalf("the sweeper deleted the object a live cache entry names (%s)", cached.URI)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the deleted workflow's objects are still %v: no sweep deleted them", objs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var back strings.Builder
	if err := st.Fetch(ctx, cached, &back); err != nil || strings.TrimSpace(back.String()) != "gone" {
		t.Fatalf("the cached object: %q, %v", back.String(), err)
	}
	// A few sweeps later, the live workflow still has all of its data.
	time.Sleep(3 * time.Second)
	if objs := objectsUnder(t, st, ns, "live", string(live.UID)); len(objs) < 2 {
		t.Fatalf("the live workflow's objects: %v, want both kept", objs)
	}

	// A namespace with a 1 s retention: its finished workflow's data
	// goes, the Workflow stays.
	n, err := env.Kube.CoreV1().Namespaces().Get(ctx, short, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations["rotor.dev/raw-data-retention"] = "1s"
	if _, err := env.Kube.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	old := run(short, "old")
	deadline = time.Now().Add(60 * time.Second)
	for {
		// Its cached model is still named by the cache entry: it stays.
		objs := objectsUnder(t, st, short, "old", string(old.UID))
		if len(objs) == 1 && strings.HasPrefix(objs[0], "train/") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the expired workflow's objects are %v, want only the cached model", objs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, err := env.Rotor.RotorV1alpha1().Workflows(short).Get(ctx, "old", metav1.GetOptions{}); err != nil {
		t.Fatalf("the expired workflow itself: %v, want it kept (retention is of its data)", err)
	}
}

// TestSubmitUploadsLocalFiles: rotor submit --input table=@FILE and
// --input parts=@DIR upload a local file and directory to the namespace's
// _uploads part of the store (checked by sha256) and submit the workflow
// with their references; the task reads them; a plain --input sets a
// string. The uploads survive the sweeps that follow (the Workflow's
// spec names them). Errors: an undeclared input, a file given for a
// directory input.
func TestSubmitUploadsLocalFiles(t *testing.T) {
	ns := namespace(t)
	dir := t.TempDir()
	table := filepath.Join(dir, "train.csv")
	var lines strings.Builder
	for i := 0; i < 1000; i++ {
		lines.WriteString(strconv.Itoa(i) + ",x\n")
	}
	if err := os.WriteFile(table, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	parts := filepath.Join(dir, "parts")
	for i := 0; i < 3; i++ {
		write(t, filepath.Join(parts, "sub", "p"+strconv.Itoa(i)), strings.Repeat("y\n", i+1))
	}
	wfFile := filepath.Join(dir, "wf.yaml")
	write(t, wfFile, `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: uploaded}
spec:
  inputs:
    table: {type: file}
    parts: {type: directory}
    label: {type: string, value: none}
  tasks:
    read:
      inputs: {table: file, parts: directory, label: string}
      outputs: {lines: integer, partLines: integer, label: string}
      container:
        image: busybox
        command: [sh, -ec, 'echo "{\"lines\": $(wc -l < $ROTOR_INPUT_TABLE), \"partLines\": $(cat $ROTOR_INPUT_PARTS/sub/* | wc -l), \"label\": \"$ROTOR_INPUT_LABEL\"}" > $ROTOR_OUTPUT_FILE']
  nodes:
    - name: r
      task: read
      inputs: {table: "{{workflow.inputs.table}}", parts: "{{workflow.inputs.parts}}", label: "{{workflow.inputs.label}}"}
`)
	st, storeURL := rawData(t)
	out, code := rotorCLI(t, "submit", "-f", wfFile, "-n", ns, "--store", storeURL, "--wait", "--timeout", "60s",
		"--input", "table=@"+table, "--input", "parts=@"+parts, "--input", "label=hello world")
	if code != 0 || !strings.Contains(out, "uploaded "+table) || !strings.Contains(out, "/_uploads/") {
		t.Fatalf("rotor submit --input @: exit %d\n%s", code, out)
	}
	wf, err := env.Rotor.RotorV1alpha1().Workflows(ns).Get(context.Background(), "uploaded", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := wf.Status.Nodes["r"].Outputs
	if string(o["lines"].Raw) != "1000" || string(o["partLines"].Raw) != "6" || string(o["label"].Raw) != `"hello world"` {
		t.Fatalf("the task saw lines %s, partLines %s, label %s; want 1000, 6, \"hello world\"", o["lines"].Raw, o["partLines"].Raw, o["label"].Raw)
	}
	var tr, pr ref.Ref
	_ = json.Unmarshal(wf.Spec.Inputs["table"].Value.Raw, &tr)
	_ = json.Unmarshal(wf.Spec.Inputs["parts"].Value.Raw, &pr)
	uploads := ref.Join(st.Root(), ns, ref.Uploads) + "/"
	if !ref.Within(tr.URI, uploads) || !ref.Within(pr.URI, uploads) || tr.Size != int64(lines.Len()) || pr.Files != 3 {
		t.Fatalf("input references table %+v, parts %+v; want them under %s, %d bytes and 3 files", tr, pr, uploads, lines.Len())
	}
	// A few sweeps (every second here) later, both are still there.
	time.Sleep(3 * time.Second)
	var back strings.Builder
	if err := st.Fetch(context.Background(), tr, &back); err != nil || back.String() != lines.String() {
		t.Fatalf("the uploaded table after the sweeps: %v (%d bytes)", err, back.Len())
	}
	// Refusals, before anything is submitted.
	if out, code := rotorCLI(t, "submit", "-f", wfFile, "-n", ns, "--store", storeURL, "--input", "nope=1"); code == 0 || !strings.Contains(out, `declares no input "nope"`) {
		t.Fatalf("an undeclared input: exit %d\n%s", code, out)
	}
	if out, code := rotorCLI(t, "submit", "-f", wfFile, "-n", ns, "--store", storeURL, "--input", "parts=@"+table); code == 0 || !strings.Contains(out, "is a directory, but") {
		t.Fatalf("a file for a directory input: exit %d\n%s", code, out)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStoreDownWaits: with the S3 server frozen (SIGSTOP), a task with a
// file input waits with reason WaitingForObjectStore and no pod, spending
// no retry; once it answers again (SIGCONT) the workflow succeeds with one
// attempt.
func TestStoreDownWaits(t *testing.T) {
	ns := namespace(t)
	first := waitDone(t, submit(t, ns, `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: before}
spec:
  tasks:
    make:
      outputs: {f: file}
      container: {image: busybox, command: [sh, -ec, 'seq 1 10 > $ROTOR_OUTPUTS_DIR/f']}
  nodes: [{name: make, task: make}]
`), 60*time.Second)
	if first.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("before: %s: %s", first.Status.Phase, first.Status.Message)
	}
	s3, err := env.Process("s3")
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := s3.Signal(syscall.SIGCONT); err != nil {
				t.Errorf("thaw the S3 server: %v", err)
			}
		}
	}
	defer thaw()
	// Past the health answer the last data pod left (kept 5 s).
	time.Sleep(6 * time.Second)
	wf := submit(t, ns, `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: during}
spec:
  inputs:
    f: {type: file, value: `+string(first.Status.Nodes["make"].Outputs["f"].Raw)+`}
  tasks:
    count:
      inputs: {f: file}
      outputs: {lines: integer}
      container: {image: busybox, command: [sh, -ec, 'echo "{\"lines\": $(wc -l < $ROTOR_INPUT_F)}" > $ROTOR_OUTPUT_FILE']}
  nodes: [{name: c, task: count, inputs: {f: "{{workflow.inputs.f}}"}}]
`)
	waiting := env.WaitWorkflow(t, wf, 60*time.Second, func(w *v1alpha1.Workflow) bool {
		return w.Status.Nodes["c"].Reason == "WaitingForObjectStore"
	})
	c := waiting.Status.Nodes["c"]
	if len(c.Attempts) != 1 || c.Attempts[0].Pod != "" || podsOf(t, waiting) != 0 {
		t.Fatalf("while the store is down: attempts %+v, %d pods; want one attempt and no pod", c.Attempts, podsOf(t, waiting))
	}
	thaw()
	got := waitDone(t, wf, 90*time.Second)
	c = got.Status.Nodes["c"]
	if got.Status.Phase != v1alpha1.WorkflowSucceeded || string(c.Outputs["lines"].Raw) != "10" || len(c.Attempts) != 1 {
		t.Fatalf("after the store came back: %s (%s), lines %s, %d attempts; want Succeeded, 10, one attempt", got.Status.Phase, got.Status.Message, c.Outputs["lines"].Raw, len(c.Attempts))
	}
}

// TestTenantLocation: a namespace whose Namespace names its own raw-data
// location (annotations rotor.dev/raw-data-url and rotor.dev/raw-data-secret,
// a Secret in Rotor's namespace) has its files and offloaded values
// written there, and read back from there by the agent and the
// propeller; nothing of it lands in the install's location; the sweeper
// deletes them there once the workflow is deleted. A namespace naming a
// Secret that does not exist waits, saying which, with no pod.
func TestTenantLocation(t *testing.T) {
	ctx := context.Background()
	ns, broken := namespace(t), namespace(t)
	s3 := env.Env.S3
	bucket := "tenant-" + ns
	if err := s3.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "raw-" + ns, Namespace: localcluster.RotorNamespace},
		Data: map[string][]byte{"accessKeyID": []byte(s3.AccessKeyID), "secretAccessKey": []byte(s3.SecretAccessKey)}}
	if _, err := env.Kube.CoreV1().Secrets(localcluster.RotorNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tenantURL := s3.URL(bucket, "rotor")
	annotate := func(name string, ann map[string]string) {
		t.Helper()
		n, err := env.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		maps.Copy(n.Annotations, ann)
		if _, err := env.Kube.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	annotate(ns, map[string]string{"rotor.dev/raw-data-url": tenantURL, "rotor.dev/raw-data-secret": secret.Name})
	annotate(broken, map[string]string{"rotor.dev/raw-data-url": tenantURL, "rotor.dev/raw-data-secret": "no-such-secret"})
	time.Sleep(time.Second) // the propeller's namespace cache
	const src = `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: own-store}
spec:
  tasks:
    make:
      outputFiles: true
      outputs: {f: file, rows: array}
      container:
        image: busybox
        command:
          - sh
          - -ec
          - |
            seq 1 500 > $ROTOR_OUTPUTS_DIR/f
            awk 'BEGIN{printf "["; for(i=0;i<500;i++){if(i)printf ","; printf "\"row-%04d\"", i}; printf "]"}' > $ROTOR_OUTPUTS_DIR/rows
    read:
      inputs: {f: file, rows: array, msg: string}
      outputs: {lines: integer, rowBytes: integer, msgBytes: integer}
      container: {image: busybox, command: [sh, -ec, 'echo "{\"lines\": $(wc -l < $ROTOR_INPUT_F), \"rowBytes\": $(wc -c < $ROTOR_INPUT_ROWS_FILE), \"msgBytes\": $(wc -c < $ROTOR_INPUT_MSG_FILE)}" > $ROTOR_OUTPUT_FILE']}
  nodes:
    - {name: make, task: make}
    - name: read
      task: read
      inputs: {f: "{{nodes.make.outputs.f}}", rows: "{{nodes.make.outputs.rows}}", msg: "rows {{nodes.make.outputs.rows}}"}
`
	got := waitDone(t, submit(t, ns, src), 90*time.Second)
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s: %s", got.Status.Phase, got.Status.Message)
	}
	tenant, err := store.Open(ctx, store.Config{URL: tenantURL, AccessKeyID: s3.AccessKeyID, SecretAccessKey: s3.SecretAccessKey})
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close()
	var f ref.Ref
	_ = json.Unmarshal(got.Status.Nodes["make"].Outputs["f"].Raw, &f)
	rows, isRef, _ := ref.ParseOffloaded(got.Status.Nodes["make"].Outputs["rows"].Raw)
	own := ref.Join(tenant.Root(), ns) + "/"
	if !ref.Within(f.URI, own) || !isRef || !ref.Within(rows.URI, own) {
		t.Fatalf("file %s and rows %+v (offloaded %v): want both in the tenant's location %s", f.URI, rows, isRef, own)
	}
	var back strings.Builder
	if err := tenant.Fetch(ctx, f, &back); err != nil || !strings.HasPrefix(back.String(), "1\n2\n") {
		t.Fatalf("the file in the tenant's bucket: %v", err)
	}
	// The message interpolating the rows is over 4 KiB too: rendered by
	// the propeller (reading the rows from the tenant's bucket), it
	// reaches the pod as a file, its JSON string.
	var rowsText strings.Builder
	if err := tenant.Fetch(ctx, rows, &rowsText); err != nil {
		t.Fatal(err)
	}
	msgJSON, _ := json.Marshal("rows " + rowsText.String())
	o := got.Status.Nodes["read"].Outputs
	if string(o["lines"].Raw) != "500" || string(o["rowBytes"].Raw) != strconv.FormatInt(rows.Size, 10) || string(o["msgBytes"].Raw) != strconv.Itoa(len(msgJSON)) {
		t.Fatalf("the reader saw lines %s, rowBytes %s, msgBytes %s; want 500, %d, %d", o["lines"].Raw, o["rowBytes"].Raw, o["msgBytes"].Raw, rows.Size, len(msgJSON))
	}
	install, _ := rawData(t)
	if objs := objectsUnder(t, install, ns, "own-store", string(got.UID)); len(objs) != 0 {
		t.Fatalf("the tenant's data also went to the install's location: %v", objs)
	}
	// rotor outputs finds the namespace's own location by itself (no
	// --store) and reads it with the Secret the Namespace names.
	dl := t.TempDir()
	if out, code := rotorCLI(t, "outputs", "own-store", "make", "-n", ns, "--download", dl); code != 0 || !strings.Contains(out, "downloaded make.f") {
		t.Fatalf("rotor outputs --download from the tenant's location: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(dl, "make", "f")); err != nil || !strings.HasPrefix(string(b), "1\n2\n") {
		t.Fatalf("downloaded f: %q, %v", b, err)
	}
	// The sweeper sweeps the tenant's location too: once the workflow is
	// deleted, its objects there go.
	if err := env.Rotor.RotorV1alpha1().Workflows(ns).Delete(ctx, "own-store", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(objectsUnder(t, tenant, ns, "own-store", string(got.UID))) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the deleted workflow's objects in the tenant's bucket are still %v", objectsUnder(t, tenant, ns, "own-store", string(got.UID)))
		}
		time.Sleep(500 * time.Millisecond)
	}
	wf := submit(t, broken, strings.Replace(src, "own-store", "no-secret", 1))
	waiting := env.WaitWorkflow(t, wf, 60*time.Second, func(w *v1alpha1.Workflow) bool {
		n := w.Status.Nodes["make"]
		return n.Reason == "WaitingForObjectStore" && strings.Contains(n.Message, "no-such-secret")
	})
	if podsOf(t, waiting) != 0 {
		t.Fatal("a pod was created for a namespace whose location cannot be opened")
	}
}

// TestRecoveredRunKeepsItsSourcesObjects: a run that recovers from a
// failed one reuses the file its succeeded node wrote (the reference into
// the failed run's prefix, no new pod for that node); once the failed run
// is deleted, the sweeper deletes the rest of its data but keeps that
// file, which the recovered run still references.
func TestRecoveredRunKeepsItsSourcesObjects(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	const src = `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  RECOVER
  inputs: {ok: {type: boolean, value: "@OK@"}}
  tasks:
    make:
      outputs: {f: file}
      container: {image: busybox, command: [sh, -ec, 'seq 1 300 > $ROTOR_OUTPUTS_DIR/f']}
    check:
      inputs: {f: file, ok: boolean}
      outputs: {lines: integer}
      container: {image: busybox, command: [sh, -ec, 'test "$ROTOR_INPUT_OK" = true; echo "{\"lines\": $(wc -l < $ROTOR_INPUT_F)}" > $ROTOR_OUTPUT_FILE']}
  nodes:
    - {name: make, task: make}
    - {name: check, task: check, inputs: {f: "{{nodes.make.outputs.f}}", ok: "{{workflow.inputs.ok}}"}}
`
	mk := func(name, recover, ok string) string {
		return strings.NewReplacer("NAME", name, "RECOVER", recover, `"@OK@"`, ok).Replace(src)
	}
	failed := waitDone(t, submit(t, ns, mk("first", "", "false")), 60*time.Second)
	if failed.Status.Phase != v1alpha1.WorkflowFailed || failed.Status.Nodes["make"].Phase != v1alpha1.NodeSucceeded {
		t.Fatalf("first: %s, make %s; want Failed with make Succeeded", failed.Status.Phase, failed.Status.Nodes["make"].Phase)
	}
	var made ref.Ref
	_ = json.Unmarshal(failed.Status.Nodes["make"].Outputs["f"].Raw, &made)
	st, _ := rawData(t)
	// Something of the failed run's that nothing references.
	leftover := ref.Join(st.Root(), ns, "first", string(failed.UID), "check", "0", "outputs", "scratch")
	if _, err := st.Put(ctx, leftover, strings.NewReader("scratch")); err != nil {
		t.Fatal(err)
	}
	second := waitDone(t, submit(t, ns, mk("second", "recoverFrom: first", "true")), 60*time.Second)
	if second.Status.Phase != v1alpha1.WorkflowSucceeded || second.Status.Nodes["make"].Reason != v1alpha1.ReasonRecovered || string(second.Status.Nodes["check"].Outputs["lines"].Raw) != "300" {
		t.Fatalf("second: %s (%s), make %s, lines %s; want Succeeded, make Recovered, 300", second.Status.Phase, second.Status.Message, second.Status.Nodes["make"].Reason, second.Status.Nodes["check"].Outputs["lines"].Raw)
	}
	var reused ref.Ref
	_ = json.Unmarshal(second.Status.Nodes["make"].Outputs["f"].Raw, &reused)
	if reused != made {
		t.Fatalf("the recovered make's file %+v, want the first run's %+v", reused, made)
	}
	if err := env.Rotor.RotorV1alpha1().Workflows(ns).Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		objs := objectsUnder(t, st, ns, "first", string(failed.UID))
		if !slices.Contains(objs, "check/0/outputs/scratch") {
			if !slices.Contains(objs, strings.TrimPrefix(made.URI, ref.Join(st.Root(), ns, "first", string(failed.UID))+"/")) {
				t.Fatalf("the sweeper deleted the file the recovered run references (%s); left: %v", made.URI, objs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the deleted run's scratch object is still there: no sweep ran (%v)", objs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
