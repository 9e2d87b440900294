package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ErrUnsupported marks a probe handler this runtime cannot run (exec:
// there is no way into a running container's namespaces yet).
var ErrUnsupported = errors.New("unsupported probe handler")

// CheckFor returns the check of a probe of container c whose pod has
// podIP: httpGet and tcpSocket default their host to podIP, as a
// kubelet's do.
func CheckFor(p *corev1.Probe, c *corev1.Container, podIP string) (Check, error) {
	switch h := p.ProbeHandler; {
	case h.HTTPGet != nil:
		port, err := resolvePort(h.HTTPGet.Port, c)
		if err != nil {
			return nil, err
		}
		return httpCheck(h.HTTPGet, hostOr(h.HTTPGet.Host, podIP), port), nil
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, c)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort(hostOr(h.TCPSocket.Host, podIP), strconv.Itoa(port))
		return func(ctx context.Context) error {
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return conn.Close()
		}, nil
	case h.GRPC != nil:
		return grpcCheck(net.JoinHostPort(podIP, strconv.Itoa(int(h.GRPC.Port))), h.GRPC.Service), nil
	}
	return nil, fmt.Errorf("%w: only httpGet, tcpSocket and grpc probes run in the image runtime", ErrUnsupported)
}

// probeClient never reuses connections, as a kubelet's prober does not, so
// a check is a fresh connect, and skips TLS verification like it does.
var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // like a kubelet's prober
	CheckRedirect: func(_ *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	},
}

func httpCheck(g *corev1.HTTPGetAction, host string, port int) Check {
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}).String() + path
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/rotor-nodeagent")
		for _, h := range g.HTTPHeaders {
			if strings.EqualFold(h.Name, "Host") {
				req.Host = h.Value
				continue
			}
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	}
}

func grpcCheck(addr string, service *string) Check {
	return func(ctx context.Context) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		req := &healthpb.HealthCheckRequest{}
		if service != nil {
			req.Service = *service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, req)
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("gRPC probe: service unhealthy (%s)", resp.GetStatus())
		}
		return nil
	}
}

// resolvePort returns a port number, looking a name up in the container's
// ports like a kubelet.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("probe port %q is not a number nor a named port of container %s", p.StrVal, c.Name)
}

func hostOr(host, podIP string) string {
	if host != "" {
		return host
	}
	return podIP
}
