package harness

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceAccountToken creates ServiceAccount ns/name in the control
// cluster and returns a token of it (TokenRequest API).
func (e *Env) ServiceAccountToken(t testing.TB, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := e.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
	}
	tr, err := e.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// scrapeClient does not verify the server: a process without
// --metrics-cert-file serves a self-signed certificate, and what a
// scraper proves is its token's grant (Prometheus' insecure_skip_verify).
var scrapeClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// ScrapeGet GETs https://addr+path with bearer token (none if empty)
// and returns the status and body.
func ScrapeGet(t testing.TB, addr, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		t.Fatalf("GET https://%s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// CheckMetricsAuth checks that a process run with --metrics-auth at addr
// answers as RBAC decides: /healthz open (the kubelet probes it without a
// token); /metrics 401 without a token and with a forged one, 403 naming
// the user to nobody (ServiceAccount nobodyUser, without the grant), 200
// with Rotor's series to reader (bound to get /metrics). A grant made just
// before may take the server's denied-decision cache (10 s) to show, so
// the reader is retried for up to 20 s.
func CheckMetricsAuth(t testing.TB, name, addr, reader, nobody, nobodyUser string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	code, body := ScrapeGet(t, addr, "/metrics", reader)
	for code != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		code, body = ScrapeGet(t, addr, "/metrics", reader)
	}
	if code != http.StatusOK || !strings.Contains(body, "rotor_") {
		t.Errorf("%s: GET /metrics as the reader: %d %.200q after 20 s; want 200 with rotor_ series", name, code, body)
	}
	for _, tc := range []struct {
		path, who, token string
		code             int
		body             string
	}{
		{"/healthz", "no one", "", http.StatusOK, "ok"},
		{"/metrics", "no one", "", http.StatusUnauthorized, "send a bearer token"},
		{"/metrics", "a forged token", "not-a-token", http.StatusUnauthorized, ""},
		{"/metrics", nobodyUser, nobody, http.StatusForbidden, `user "` + nobodyUser + `" may not get /metrics`},
	} {
		if code, body := ScrapeGet(t, addr, tc.path, tc.token); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: GET %s as %s: %d %.200q; want %d containing %q", name, tc.path, tc.who, code, body, tc.code, tc.body)
		}
	}
}
