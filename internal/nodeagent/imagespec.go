package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/internal/nodeagent/container"
	"github.com/rotor-dev/rotor/internal/nodeagent/image"
	"github.com/rotor-dev/rotor/internal/nodeagent/nsexec"
	"github.com/rotor-dev/rotor/internal/nodeagent/rootpath"
)

// maxLogMessage is how much of a failed container's log becomes its
// message under FallbackToLogsOnError, as in a kubelet.
const maxLogMessage = 2048

// prepare turns the container spec and its image into what the helper
// runs. Errors are CreateContainerConfigErrors.
func (c *containerRun) prepare(img *image.Image) (*nsexec.Spec, error) {
	vars, err := container.Env(c.w.ctx, container.EnvInput{
		Pod: c.w.pod, Container: c.spec, Sources: apiSources{c.w.rt.a}, Service: c.serviceVars(), Allocatable: allocatable,
	})
	if err != nil {
		return nil, err
	}
	id, err := container.ResolveIdentity(c.w.pod, c.spec, img.Config.User, readUsers(img.RootFS))
	if err != nil {
		return nil, err
	}
	mounts, err := c.mounts(container.Map(vars))
	if err != nil {
		return nil, err
	}
	name := hostname(c.w.pod)
	env := container.Merge(append([]string{"HOSTNAME=" + name}, img.Config.Env...), vars)
	if !hasVar(env, "HOME") {
		env = append(env, "HOME="+id.Home)
	}
	dir := firstOf(c.spec.WorkingDir, img.Config.WorkingDir, "/")
	return &nsexec.Spec{
		RootFS: img.RootFS, Scratch: filepath.Join(c.dir, "scratch"), ReadOnlyRoot: readOnlyRoot(c.spec),
		Hostname: name, Mounts: mounts, Env: env, Dir: dir, UID: id.UID, GID: id.GID, Groups: id.Groups,
		Argv: container.Argv(c.spec.Command, c.spec.Args, img.Config.Entrypoint, img.Config.Cmd, container.Map(vars)),
	}, nil
}

// serviceVars are the kubernetes Service's env vars; the API server is
// reached directly, there being no Service network.
func (c *containerRun) serviceVars() []container.Var {
	host, port := c.w.rt.cfg.KubeServiceHost, c.w.rt.cfg.KubeServicePort
	url := "tcp://" + host + ":" + port
	return []container.Var{
		{Name: "KUBERNETES_SERVICE_HOST", Value: host}, {Name: "KUBERNETES_SERVICE_PORT", Value: port},
		{Name: "KUBERNETES_SERVICE_PORT_HTTPS", Value: port}, {Name: "KUBERNETES_PORT", Value: url},
		{Name: "KUBERNETES_PORT_" + port + "_TCP", Value: url},
		{Name: "KUBERNETES_PORT_" + port + "_TCP_PROTO", Value: "tcp"},
		{Name: "KUBERNETES_PORT_" + port + "_TCP_PORT", Value: port},
		{Name: "KUBERNETES_PORT_" + port + "_TCP_ADDR", Value: host},
	}
}

// mounts are the container's volume mounts, then what a kubelet always
// mounts: /etc/hosts, /etc/hostname, /etc/resolv.conf and the
// termination message file.
func (c *containerRun) mounts(env map[string]string) ([]nsexec.Mount, error) {
	var out []nsexec.Mount
	for _, vm := range c.spec.VolumeMounts {
		src, ok := c.vols.Dirs[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: the pod has no volume %q", vm.MountPath, vm.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = container.ExpandVars(vm.SubPathExpr, env)
		}
		if sub != "" {
			var err error
			if src, err = subPath(src, sub); err != nil {
				return nil, fmt.Errorf("volumeMount %s: %w", vm.MountPath, err)
			}
		}
		out = append(out, nsexec.Mount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	out = append(out,
		nsexec.Mount{Source: filepath.Join(c.w.dir, "etc-hosts"), Target: "/etc/hosts", ReadOnly: true},
		nsexec.Mount{Source: filepath.Join(c.w.dir, "etc-hostname"), Target: "/etc/hostname", ReadOnly: true},
		nsexec.Mount{Source: c.messageFile(), Target: firstOf(c.spec.TerminationMessagePath, "/dev/termination-log")},
	)
	if _, err := os.Stat("/etc/resolv.conf"); err == nil {
		out = append(out, nsexec.Mount{Source: "/etc/resolv.conf", Target: "/etc/resolv.conf", ReadOnly: true})
	}
	return out, nil
}

// subPath resolves sub inside a volume (a symlink a container left in an
// emptyDir cannot point a later mount outside it) and creates it if
// missing, as a kubelet does.
func subPath(volume, sub string) (string, error) {
	if filepath.IsAbs(sub) || strings.HasPrefix(filepath.Clean(sub), "..") {
		return "", fmt.Errorf("subPath %q must be relative and stay inside the volume", sub)
	}
	p, err := rootpath.Resolve(volume, sub)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); os.IsNotExist(err) {
		if err := os.MkdirAll(p, 0o777); err != nil {
			return "", err
		}
	}
	return p, nil
}

// terminationMessage is what the container wrote to its termination
// message file, or under FallbackToLogsOnError the end of its log if it
// failed and wrote nothing.
func (c *containerRun) terminationMessage(code int32) string {
	msg := readMessage(c.messageFile())
	if msg != "" || code == 0 || c.spec.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		return msg
	}
	b, err := os.ReadFile(c.logFile())
	if err != nil {
		return ""
	}
	if len(b) > maxLogMessage {
		b = b[len(b)-maxLogMessage:]
	}
	return string(b)
}

// readUsers reads the image's /etc/passwd and /etc/group (none is fine).
func readUsers(rootfs string) *container.Users {
	read := func(p string) []byte {
		host, err := rootpath.Resolve(rootfs, p)
		if err != nil {
			return nil
		}
		b, _ := os.ReadFile(host)
		return b
	}
	return container.ParseUsers(read("/etc/passwd"), read("/etc/group"))
}

func readOnlyRoot(c *corev1.Container) bool {
	return c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem
}

func hasVar(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// apiSources reads env var sources from the API server.
type apiSources struct{ a *Agent }

func (s apiSources) ConfigMap(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return s.a.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
}

func (s apiSources) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return s.a.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
}
