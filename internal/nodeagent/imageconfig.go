package nodeagent

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/internal/nodeagent/backoff"
)

// ImageConfig turns the agent into the image runtime: pods run from their
// images, with volumes, probes, restarts and pod IPs. See the package doc.
type ImageConfig struct {
	// ImageDir caches pulled images by digest; several agents may share
	// it. Default: <WorkDir>/images.
	ImageDir string
	// InsecureRegistries are reached over plain HTTP (host or host:port);
	// registries on loopback hosts always are.
	InsecureRegistries []string
	// PodCIDR is the loopback range pod IPs come from; nodes sharing a
	// machine need disjoint ranges. Default 127.1.0.0/16.
	PodCIDR string
	// KubeServiceHost and KubeServicePort are what pods get as
	// KUBERNETES_SERVICE_HOST/PORT: the API server as seen from the node
	// (there is no Service network).
	KubeServiceHost, KubeServicePort string
	// Helper is the binary re-executed to set up each container's mount
	// namespace; it must dispatch nsexec.Subcommand. Default: this
	// process's own executable.
	Helper string
	// RestartBackoff and PullBackoff default to the kubelet's 10s doubling
	// to 5m; tests shorten them.
	RestartBackoff, PullBackoff backoff.Policy
	// ShutdownGrace caps each pod's grace period when the agent itself
	// stops. Default 10s.
	ShutdownGrace time.Duration
	// Clock drives probes, back-offs and token refreshes. Default: real.
	Clock clock.Clock
}

// imageSettings is a validated ImageConfig with defaults filled.
type imageSettings struct {
	ImageConfig
	podCIDR netip.Prefix
}

// settings validates c and fills its defaults; it is the one place that
// does.
func (c ImageConfig) settings(workDir string) (imageSettings, error) {
	s := imageSettings{ImageConfig: c}
	if s.ImageDir == "" {
		s.ImageDir = filepath.Join(workDir, "images")
	}
	if s.PodCIDR == "" {
		s.PodCIDR = "127.1.0.0/16"
	}
	prefix, err := netip.ParsePrefix(s.PodCIDR)
	if err != nil {
		return s, fmt.Errorf("--pod-cidr %q: %w", s.PodCIDR, err)
	}
	if !netip.MustParsePrefix("127.0.0.0/8").Contains(prefix.Addr()) || prefix.Bits() < 8 {
		return s, fmt.Errorf("--pod-cidr %s: pods share the node's network, so their IPs must be loopback addresses inside 127.0.0.0/8, e.g. 127.1.0.0/16", prefix)
	}
	s.podCIDR = prefix
	if s.KubeServiceHost == "" || s.KubeServicePort == "" {
		return s, errors.New("the image runtime needs the API server's address for pods (--kube-service-host, --kube-service-port)")
	}
	if s.Helper == "" {
		if s.Helper, err = os.Executable(); err != nil {
			return s, fmt.Errorf("find the container helper (this binary): %w", err)
		}
	}
	s.RestartBackoff = s.RestartBackoff.WithDefaults()
	s.PullBackoff = s.PullBackoff.WithDefaults()
	if s.ShutdownGrace <= 0 {
		s.ShutdownGrace = 10 * time.Second
	}
	if s.Clock == nil {
		s.Clock = clock.RealClock{}
	}
	return s, nil
}
