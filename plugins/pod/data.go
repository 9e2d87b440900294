package pod

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/values"
	"github.com/rotor-dev/rotor/data/agent"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/plugins"
)

// DataConfig turns the data plane on: task pods with file or directory
// inputs or outputs get the data agent.
type DataConfig struct {
	// StoreURL is the raw-data location (store.Config.URL) the agent
	// opens; Root is that store's root URI, under which attempts'
	// prefixes are made (store.Store.Root).
	StoreURL, Root string
	// AccessKeyID and SecretAccessKey reach the agent through a Secret
	// (DataSecretName) Rotor keeps in each target namespace.
	AccessKeyID, SecretAccessKey string
	// Image is the data agent's image; Command, when set, is its
	// executable (the process runtime ignores images: the sandbox gives
	// bin/rotor-data's path).
	Image, Command string
	// MaxOutputBytes bounds each file or directory output (0: none).
	MaxOutputBytes int64
	// Resources are each agent container's requests and limits.
	Resources corev1.ResourceRequirements
	// Health, if set, says whether the store answers; a data pod is not
	// created while it does not.
	Health interface{ Err(context.Context) error }
	// For, if set, returns the settings for a namespace whose tenant has a
	// location of its own (package data/location): this config with its
	// store, root, credentials and health replaced. Nil: one location.
	For func(ctx context.Context, namespace string) (*DataConfig, error)
}

// data returns the data plane's settings for namespace (nil: none).
func (p *Plugin) data(ctx context.Context, namespace string) (*DataConfig, error) {
	c := p.cfg.Data
	if c == nil || c.For == nil {
		return c, nil
	}
	return c.For(ctx, namespace)
}

// The data agent's pieces in a task pod.
const (
	DataVolume     = "rotor-data"
	DataMountPath  = "/rotor"
	DataSecretName = "rotor-data-credentials"
	DownloadName   = "rotor-data-download"
	UploadName     = "rotor-data-upload"
	// dataGrace is the pod's termination grace: the upload sidecar has
	// it, after the task exits, to store the outputs.
	dataGrace = int64(300)
)

// Data failure reasons on the node.
const (
	ReasonDataDownload = "DataDownloadFailed" // the store failed: retried
	ReasonDataUpload   = "DataUploadFailed"   // the store failed: retried
	ReasonDataInput    = "DataInputInvalid"   // a missing or changed input object
	ReasonDataOutput   = "DataOutputInvalid"  // an output missing, too large or malformed
	// ReasonWaitingForStore: the store does not answer, so the pod that
	// would need it is not created yet.
	ReasonWaitingForStore = "WaitingForObjectStore"
	// storeWait is how soon a waiting attempt looks again.
	storeWait = 5 * time.Second
	// dataSecretTTL is how long the agent's Secret, once seen right in a
	// target namespace, is taken to be there: one that was deleted is
	// made again within it.
	dataSecretTTL = time.Minute
)

// seen remembers keys with when they were last checked.
type seen struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (s *seen) fresh(key string, now time.Time, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[key]
	return ok && now.Sub(t) < ttl
}

func (s *seen) mark(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	s.at[key] = now
}

// dataIO lists what the agent moves for the attempt: file and directory
// inputs and outputs, inputs whose values are offloaded, and, when the
// pod has the upload sidecar anyway or the task asks for it
// (outputFiles), its string, object and array outputs written as files.
// An input must lie under the namespace's own part of its location
// (root): the agent reads with the location's credentials, which every
// namespace sharing that location shares, and a reference written by
// hand could name another tenant's object.
func dataIO(tc *plugins.TaskContext, root string) (ins []agent.Input, outs []agent.Output, err error) {
	own := ref.Join(root, tc.ID.Namespace) + "/"
	for _, name := range slices.Sorted(maps.Keys(tc.Task.Inputs)) {
		t := tc.Task.Inputs[name]
		raw, ok := tc.Inputs[name]
		if !ok {
			continue // optional and unbound
		}
		var r ref.Ref
		kind := kindOf(t)
		switch {
		case t.IsData():
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, nil, fmt.Errorf("input %s: %w", name, err)
			}
		case values.Offloadable(t):
			off, isRef, err := ref.ParseOffloaded(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("input %s: %w", name, err)
			}
			if !isRef {
				continue
			}
			r, kind = off, ref.KindValue
		default:
			continue
		}
		if root != "" && !ref.Within(r.URI, own) {
			return nil, nil, fmt.Errorf("input %s: %s is not in namespace %s's part of the object store (%s): a task reads only its own namespace's data", name, r.URI, tc.ID.Namespace, own)
		}
		ins = append(ins, agent.Input{Name: name, Kind: kind, Ref: r})
	}
	for _, name := range slices.Sorted(maps.Keys(tc.Task.Outputs)) {
		if t := tc.Task.Outputs[name]; t.IsData() {
			outs = append(outs, agent.Output{Name: name, Kind: kindOf(t)})
		}
	}
	if len(outs) > 0 || tc.Task.OutputFiles {
		for _, name := range slices.Sorted(maps.Keys(tc.Task.Outputs)) {
			if t := tc.Task.Outputs[name]; values.Offloadable(t) {
				outs = append(outs, agent.Output{Name: name, Kind: ref.KindValue, Type: string(t), Optional: true})
			}
		}
	}
	return ins, outs, nil
}

// offloadedInput reports whether input name of tc arrives offloaded: the
// task reads it from a file, never from its environment or command line.
func offloadedInput(tc *plugins.TaskContext, name string) (ref.Ref, bool) {
	if !values.Offloadable(tc.Task.Inputs[name]) {
		return ref.Ref{}, false
	}
	r, isRef, err := ref.ParseOffloaded(tc.Inputs[name])
	return r, isRef && err == nil
}

func kindOf(t v1alpha1.ValueType) ref.Kind {
	if t == v1alpha1.TypeDirectory {
		return ref.KindDirectory
	}
	return ref.KindFile
}

// attemptPrefix is where the attempt's objects go.
func (c *DataConfig) attemptPrefix(id plugins.TaskID) (string, error) {
	return ref.Attempt{Namespace: id.Namespace, Workflow: id.Workflow, WorkflowUID: id.WorkflowUID, Node: id.Node, Attempt: id.Attempt}.Prefix(c.Root)
}

// addDataAgent gives pod the shared volume, the download init container
// (with inputs) and the upload sidecar (with outputs), when the task moves
// data (hasDataAgent says so afterwards).
func (p *Plugin) addDataAgent(tc *plugins.TaskContext, pod *corev1.Pod) error {
	c, err := p.data(context.Background(), tc.ID.Namespace) // opened already by create: cached
	if err != nil {
		return err
	}
	root := ""
	if c != nil {
		root = c.Root
	}
	ins, outs, err := dataIO(tc, root)
	if err != nil || len(ins)+len(outs) == 0 {
		return err
	}
	if c == nil {
		return fmt.Errorf("the task has file or directory inputs or outputs, offloaded inputs or outputFiles, but this Rotor has no object store: set --raw-data-url on the propeller")
	}
	prefix, err := c.attemptPrefix(tc.ID)
	if err != nil {
		return err
	}
	spec, _ := json.Marshal(agent.Spec{Store: c.StoreURL, Prefix: prefix, Dir: DataMountPath, Inputs: ins, Outputs: outs, MaxOutputBytes: c.MaxOutputBytes})
	env := []corev1.EnvVar{
		{Name: "ROTOR_DATA_SPEC", Value: string(spec)},
		{Name: "ROTOR_DATA_ACCESS_KEY_ID", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: DataSecretName}, Key: "accessKeyID"}}},
		{Name: "ROTOR_DATA_SECRET_ACCESS_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: DataSecretName}, Key: "secretAccessKey"}}},
	}
	mount := []corev1.VolumeMount{{Name: DataVolume, MountPath: DataMountPath}}
	// The agent needs no privilege: what Pod Security's restricted level
	// asks of a container (the pod-level fields are the policy's).
	sc := func() *corev1.SecurityContext {
		return &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	}
	cmd := func(sub string) []string {
		if c.Command != "" {
			return []string{c.Command, sub}
		}
		return []string{"/rotor-data", sub}
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: DataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	main := &pod.Spec.Containers[0]
	main.VolumeMounts = append(main.VolumeMounts, mount...)
	// The task's own view: each data input's value is its local path;
	// an offloaded value's file is named by ROTOR_INPUT_<X>_FILE instead
	// (the value itself may be far over what an environment holds).
	for i := range main.Env {
		for _, in := range ins {
			if main.Env[i].Name != "ROTOR_INPUT_"+envName(in.Name) {
				continue
			}
			main.Env[i].Value = DataMountPath + "/inputs/" + in.Name
			if in.Kind == ref.KindValue {
				main.Env[i].Name += "_FILE"
			}
		}
	}
	main.Env = append(main.Env, corev1.EnvVar{Name: "ROTOR_OUTPUTS_DIR", Value: DataMountPath + "/outputs"})
	if len(ins) > 0 {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
			Name: DownloadName, Image: c.Image, Command: cmd("download"), Env: env, VolumeMounts: mount, SecurityContext: sc(),
			Resources:              *c.Resources.DeepCopy(),
			TerminationMessagePath: OutputFile, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		})
	}
	if len(outs) > 0 {
		// The sidecar also makes /rotor/outputs before it says it is
		// ready, so the task finds the directory to write into.
		always := corev1.ContainerRestartPolicyAlways
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
			Name: UploadName, Image: c.Image, Command: cmd("upload"), Env: env, VolumeMounts: mount, SecurityContext: sc(),
			Resources:     *c.Resources.DeepCopy(),
			RestartPolicy: &always,
			// postStart returns once the sidecar handles SIGTERM, and a
			// kubelet starts the task only after a sidecar's postStart:
			// the task cannot exit before the sidecar would upload. (A
			// startupProbe would add a process per pod for nothing.)
			Lifecycle:              &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: cmd("wait-ready")}}},
			TerminationMessagePath: OutputFile, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		})
		pod.Spec.TerminationGracePeriodSeconds = ptr.To(dataGrace)
	}
	return nil
}

// ensureDataSecret keeps the agent's credentials in the attempt's
// namespace of the target, created or updated as Rotor's copy.
func (p *Plugin) ensureDataSecret(ctx context.Context, tc *plugins.TaskContext, core corev1client.CoreV1Interface, c *DataConfig) error {
	// Keyed on the key ID too: a namespace given a location of its own
	// gets its credentials at once.
	key := tc.Cluster.Name + "/" + tc.ID.Namespace + "/" + c.AccessKeyID
	if p.dataSecrets.fresh(key, time.Now(), dataSecretTTL) {
		return nil
	}
	ns := tc.ID.Namespace
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: DataSecretName, Namespace: ns,
			Labels: map[string]string{LabelManaged: "true", LabelSecretCopy: "true"}},
		Data: map[string][]byte{"accessKeyID": []byte(c.AccessKeyID), "secretAccessKey": []byte(c.SecretAccessKey)},
	}
	api := core.Secrets(ns)
	existing, err := api.Get(ctx, DataSecretName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) { // the namespace is new to this target
			if err = ensureNamespace(ctx, tc); err == nil {
				_, err = api.Create(ctx, want, metav1.CreateOptions{})
			}
		}
	case err != nil:
	case maps.EqualFunc(existing.Data, want.Data, bytes.Equal):
		p.dataSecrets.mark(key, time.Now())
		return nil
	default:
		want.ResourceVersion = existing.ResourceVersion
		_, err = api.Update(ctx, want, metav1.UpdateOptions{})
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("keep the data agent's credentials (secret %s/%s) in cluster %s: %w", ns, DataSecretName, tc.Cluster.Name, err)
	}
	p.dataSecrets.mark(key, time.Now())
	return nil
}

// agentResult is the upload sidecar's or the download container's
// termination message.
type agentResult struct {
	Outputs map[string]json.RawMessage `json:"outputs"`
	Error   *struct {
		System  bool   `json:"system"`
		Message string `json:"message"`
	} `json:"error"`
}

func initTerminated(pod *corev1.Pod, name string) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.InitContainerStatuses {
		if cs.Name == name {
			return cs.State.Terminated
		}
	}
	return nil
}

// agentFailure is the attempt's end when a data container failed, or
// nil: exit 2 is the task's or its inputs' fault; anything else (exit 1,
// the store's fault; a kill, an eviction, a crash) is a system failure,
// retried without spending the user's retries.
func agentFailure(term *corev1.ContainerStateTerminated, system, user string) *plugins.PhaseInfo {
	if term == nil || term.ExitCode == 0 {
		return nil
	}
	msg := strings.TrimSpace(term.Message)
	var r agentResult
	if json.Unmarshal([]byte(msg), &r) == nil && r.Error != nil {
		msg = r.Error.Message
	}
	if msg == "" {
		msg = fmt.Sprintf("exited with code %d", term.ExitCode)
	}
	if term.ExitCode == 2 {
		return &plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: user, Message: "the data agent: " + truncate(msg, 512)}
	}
	return &plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: system, Message: "the data agent: " + truncate(msg, 512)}
}

// withUploads merges what the upload sidecar reports into the task's
// outputs; each reference must lie under the attempt's prefix.
func withUploads(info plugins.PhaseInfo, term *corev1.ContainerStateTerminated, prefix string, task *v1alpha1.TaskTemplate) plugins.PhaseInfo {
	if f := agentFailure(term, ReasonDataUpload, ReasonDataOutput); f != nil {
		f.StartedAt = info.StartedAt
		return *f
	}
	if term == nil {
		return plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: ReasonDataUpload, StartedAt: info.StartedAt,
			Message: "the pod succeeded but its upload sidecar reported nothing"}
	}
	var r agentResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(term.Message)), &r); err != nil {
		return plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: ReasonDataUpload, StartedAt: info.StartedAt,
			Message: fmt.Sprintf("the upload sidecar's report is not JSON: %v", err)}
	}
	outs := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(info.Outputs)) > 0 {
		if err := json.Unmarshal(info.Outputs, &outs); err != nil {
			return info // checkOutputs says what is wrong with them
		}
	}
	for name, v := range r.Outputs {
		// A file or directory is a reference; a value written as a file
		// is inline (small) or offloaded. Every reference must name an
		// object of this attempt's.
		ref1, isRef, err := ref.ParseOffloaded(v)
		if !isRef && err == nil && !values.Offloadable(task.Outputs[name]) {
			err = json.Unmarshal(v, &ref1)
			isRef = true
		}
		if err != nil || (isRef && !ref.Within(ref1.URI, prefix)) {
			return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonDataOutput, StartedAt: info.StartedAt,
				Message: fmt.Sprintf("output %s: the reference %s is not under the attempt's prefix %s", name, ref1.URI, prefix)}
		}
		if _, dup := outs[name]; dup {
			return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonDataOutput, StartedAt: info.StartedAt,
				Message: fmt.Sprintf("output %s is a file or directory, but the task also wrote it in its outputs JSON", name)}
		}
		outs[name] = v
	}
	info.Outputs, _ = json.Marshal(outs)
	return info
}
