package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestCheckFor(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	c := &corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	httpProbe := func(path string, p intstr.IntOrString) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: p}}}
	}
	for _, tc := range []struct {
		name  string
		probe *corev1.Probe
		ok    bool
	}{
		{"http by number", httpProbe("/readyz", intstr.FromInt(port)), true},
		{"http by name", httpProbe("/readyz", intstr.FromString("http")), true},
		{"http 503 fails", httpProbe("/healthz", intstr.FromInt(port)), false},
		{"tcp", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}}, true},
		{"tcp closed port", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(1)}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check, err := CheckFor(tc.probe, c, host)
			if err != nil {
				t.Fatal(err)
			}
			if err := check(context.Background()); (err == nil) != tc.ok {
				t.Fatalf("check error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	t.Run("exec unsupported", func(t *testing.T) {
		_, err := CheckFor(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}}, c, host)
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("exec probe error = %v, want ErrUnsupported", err)
		}
	})
	t.Run("unknown port name", func(t *testing.T) {
		if _, err := CheckFor(httpProbe("/", intstr.FromString("nope")), c, host); err == nil {
			t.Fatal("probe on an unknown named port accepted")
		}
	})
}
