package kubeauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"
)

// testCA issues certificates for the gRPC tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, cn string, orgs []string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestGRPCGuard: a call without credentials is Unauthenticated; a token
// the apiserver rejects too; a certificate from another CA is refused in
// the handshake; a known user without the permission is PermissionDenied
// naming the verb and resource; the token and the certificate of a user
// with it are served; a method without a rule is refused for everyone.
func TestGRPCGuard(t *testing.T) {
	serverCA, clientCA, otherCA := newTestCA(t, "serving"), newTestCA(t, "clients"), newTestCA(t, "other")
	rev := &fakeReviewer{}
	g := &Guard{Reviewer: rev, Clock: clock.RealClock{}}
	rules := func(method string, _ any) (Attributes, bool) {
		switch method {
		case healthpb.Health_Check_FullMethodName:
			return Attributes{Verb: "drain", Group: "rotor.dev", Resource: "shards"}, true
		case healthpb.Health_Watch_FullMethodName:
			return Attributes{Verb: "list", Group: "rotor.dev", Resource: "cacheentries", Namespace: "team-b"}, true
		}
		return Attributes{}, false
	}
	srvCert := serverCA.issue(t, "rotor-manager", nil, true)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: clientCA.pool, ClientAuth: tls.VerifyClientCertIfGiven})),
		grpc.UnaryInterceptor(g.UnaryInterceptor(rules)), grpc.StreamInterceptor(g.StreamInterceptor(rules)))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	dial := func(cert *tls.Certificate) healthpb.HealthClient {
		cfg := &tls.Config{RootCAs: serverCA.pool}
		if cert != nil {
			// Always present it, even when the server's list of accepted
			// CAs does not name its issuer (Go's client would withhold it).
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return healthpb.NewHealthClient(conn)
	}
	check := func(c healthpb.HealthClient, token string) error {
		ctx := t.Context()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	want := func(name string, err error, code codes.Code, msg string) {
		t.Helper()
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
			t.Errorf("%s: %v, want %s containing %q", name, err, code, msg)
		}
	}
	anon := dial(nil)
	want("no credentials", check(anon, ""), codes.Unauthenticated, "send a bearer token or a client certificate (a user with drain shards.rotor.dev)")
	want("unknown token", check(anon, "nope"), codes.Unauthenticated, "does not accept this token")
	want("token without the permission", check(anon, "t-reader"), codes.PermissionDenied,
		`user "reader" may not drain shards.rotor.dev (grant a ClusterRole with apiGroups [rotor.dev], resources [shards], verbs [drain])`)
	if rev.last != (Attributes{Verb: "drain", Group: "rotor.dev", Resource: "shards"}) {
		t.Fatalf("the SubjectAccessReview asked %+v, want drain on shards.rotor.dev", rev.last)
	}
	if err := check(anon, "t-operator"); err != nil {
		t.Errorf("operator's token: %v, want served", err)
	}

	opCert := clientCA.issue(t, "operator", []string{"platform"}, false)
	asOperator := dial(&opCert)
	authns := rev.authns
	if err := check(asOperator, ""); err != nil {
		t.Errorf("operator's client certificate: %v, want served", err)
	}
	if rev.authns != authns {
		t.Errorf("a client certificate cost %d TokenReviews, want none", rev.authns-authns)
	}
	stream, err := asOperator.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	want("stream in another tenant's namespace", err, codes.PermissionDenied, `user "operator" may not list cacheentries.rotor.dev in namespace team-b (grant a Role in team-b`)

	// A certificate the client CA did not sign does not make its CN a
	// user: the handshake refuses it.
	forged := otherCA.issue(t, "operator", nil, false)
	if err := check(dial(&forged), ""); status.Code(err) != codes.Unavailable {
		t.Errorf("certificate from another CA: %v, want the handshake refused (Unavailable)", err)
	}

	// A method the rules do not cover is closed.
	rules2 := func(string, any) (Attributes, bool) { return Attributes{}, false }
	if err := g.authorizeCall(t.Context(), rules2, "/x.Y/Z", nil); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "no authorization rule") {
		t.Errorf("uncovered method: %v, want PermissionDenied naming the missing rule", err)
	}
}
