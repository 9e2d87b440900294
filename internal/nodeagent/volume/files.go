// Package volume renders a pod's volumes into directories on the node the
// way a kubelet's volume plugins do: secret, configMap, downwardAPI and
// projected volumes become files (keys or items, paths and modes
// honoured), emptyDir a fresh world-writable directory, and projected
// serviceAccountToken sources a token from the TokenRequest API bound to
// the pod, rewritten before it expires. The pure part (which files a
// source yields) is in files.go and downward.go; the rest reads the API
// and writes files.
package volume

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotor-dev/rotor/internal/nodeagent/container"
)

// DefaultMode is the mode of volume files when the source sets none.
const DefaultMode os.FileMode = 0o644

// File is one file of a rendered volume, its Path relative to the
// volume's directory.
type File struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// Project returns the files of a secret or config map's data: every key
// at its own name, or only the items listed, at their paths. A listed key
// missing from data is an error unless optional. what names the source in
// errors.
func Project(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional bool, what string) ([]File, error) {
	mode := modeOr(defaultMode, DefaultMode)
	if len(items) == 0 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		files := make([]File, 0, len(keys))
		for _, k := range keys {
			files = append(files, File{Path: k, Data: data[k], Mode: mode})
		}
		return files, nil
	}
	var files []File
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s has no key %q: add it or mark the source optional", what, it.Key)
		}
		p, err := cleanPath(it.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		files = append(files, File{Path: p, Data: v, Mode: modeOr(it.Mode, mode)})
	}
	return files, nil
}

// Downward returns the files of downward API items for pod, whose status
// IPs are filled in.
func Downward(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defaultMode *int32, allocatable corev1.ResourceList) ([]File, error) {
	mode := modeOr(defaultMode, DefaultMode)
	var files []File
	for _, it := range items {
		v, err := downwardValue(pod, it, allocatable)
		if err != nil {
			return nil, fmt.Errorf("downward API file %s: %w", it.Path, err)
		}
		p, err := cleanPath(it.Path)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: p, Data: []byte(v), Mode: modeOr(it.Mode, mode)})
	}
	return files, nil
}

func downwardValue(pod *corev1.Pod, it corev1.DownwardAPIVolumeFile, allocatable corev1.ResourceList) (string, error) {
	switch {
	case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.labels":
		return formatMap(pod.Labels), nil
	case it.FieldRef != nil && it.FieldRef.FieldPath == "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case it.FieldRef != nil:
		return container.FieldValue(pod, it.FieldRef.FieldPath)
	case it.ResourceFieldRef != nil:
		for i := range pod.Spec.Containers {
			if c := &pod.Spec.Containers[i]; c.Name == it.ResourceFieldRef.ContainerName {
				return container.ResourceValue(c, it.ResourceFieldRef, allocatable)
			}
		}
		return "", fmt.Errorf("no container %q in the pod", it.ResourceFieldRef.ContainerName)
	}
	return "", fmt.Errorf("neither fieldRef nor resourceFieldRef set")
}

// formatMap renders labels or annotations as a kubelet does: key="value"
// lines, sorted, values quoted Go-style.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// cleanPath refuses item paths that are absolute or climb out of the
// volume (the API server refuses them too; a file write is no place to
// trust that).
func cleanPath(p string) (string, error) {
	c := path.Clean(p)
	if path.IsAbs(p) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("volume item path %q must be relative and stay inside the volume", p)
	}
	return c, nil
}

func modeOr(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & os.ModePerm
}
