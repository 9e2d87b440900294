package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Renderer renders pods' volumes from the API.
type Renderer struct {
	Client kubernetes.Interface
	Clock  clock.Clock
	// Allocatable stands in for unset limits in resourceFieldRef items.
	Allocatable corev1.ResourceList
	// OnError hears about token refreshes that failed (they are retried).
	OnError func(error)
}

// Pod is a pod's rendered volumes.
type Pod struct {
	// Dirs maps each volume's name to its path on the node.
	Dirs   map[string]string
	tokens []*token
	gid    *int64
}

// Render writes every volume of pod (whose status IPs are filled in) to
// root/<volume name> and returns where each one is. An error (a missing
// secret, an unsupported volume type) names the volume; the caller retries.
func (r *Renderer) Render(ctx context.Context, pod *corev1.Pod, root string) (*Pod, error) {
	out := &Pod{Dirs: map[string]string{}}
	if sc := pod.Spec.SecurityContext; sc != nil {
		out.gid = sc.FSGroup
	}
	for _, v := range pod.Spec.Volumes {
		if err := r.renderOne(ctx, pod, v, filepath.Join(root, v.Name), out); err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return out, nil
}

func (r *Renderer) renderOne(ctx context.Context, pod *corev1.Pod, v corev1.Volume, dir string, out *Pod) error {
	out.Dirs[v.Name] = dir
	var files []File
	var err error
	switch {
	case v.EmptyDir != nil:
		return emptyDir(dir)
	case v.HostPath != nil:
		out.Dirs[v.Name] = v.HostPath.Path
		return hostPath(v.HostPath)
	case v.Secret != nil:
		files, err = r.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
	case v.ConfigMap != nil:
		files, err = r.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
	case v.DownwardAPI != nil:
		files, err = Downward(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode, r.Allocatable)
	case v.Projected != nil:
		files, err = r.projected(ctx, pod, v.Projected, dir, out)
	default:
		return fmt.Errorf("this volume type is not supported by the image runtime: use emptyDir, hostPath, secret, configMap, downwardAPI or projected")
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return Write(dir, files, out.gid)
}

func (r *Renderer) projected(ctx context.Context, pod *corev1.Pod, pv *corev1.ProjectedVolumeSource, dir string, out *Pod) ([]File, error) {
	var files []File
	for _, src := range pv.Sources {
		var fs []File
		var err error
		switch {
		case src.Secret != nil:
			fs, err = r.secretFiles(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, pv.DefaultMode, src.Secret.Optional)
		case src.ConfigMap != nil:
			fs, err = r.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, pv.DefaultMode, src.ConfigMap.Optional)
		case src.DownwardAPI != nil:
			fs, err = Downward(pod, src.DownwardAPI.Items, pv.DefaultMode, r.Allocatable)
		case src.ServiceAccountToken != nil:
			fs, err = r.firstToken(ctx, pod, src.ServiceAccountToken, pv.DefaultMode, dir, out)
		default:
			err = fmt.Errorf("projected source not supported by the image runtime: use secret, configMap, downwardAPI or serviceAccountToken")
		}
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	return files, nil
}

func (r *Renderer) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, mode *int32, optional *bool) ([]File, error) {
	s, err := r.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && isTrue(optional) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	return Project(s.Data, items, mode, isTrue(optional), "secret "+ns+"/"+name)
}

func (r *Renderer) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, mode *int32, optional *bool) ([]File, error) {
	cm, err := r.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && isTrue(optional) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get config map %s: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return Project(data, items, mode, isTrue(optional), "config map "+ns+"/"+name)
}

// emptyDir is world-writable, as a kubelet makes it, so a non-root
// container can write to it.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	return os.Chmod(dir, 0o777)
}

func hostPath(h *corev1.HostPathVolumeSource) error {
	switch t := h.Type; {
	case t != nil && *t == corev1.HostPathDirectoryOrCreate:
		return os.MkdirAll(h.Path, 0o755)
	case t != nil && *t == corev1.HostPathFileOrCreate:
		f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }
