package etcdclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       Flags
		wantErr string
	}{
		{name: "none", f: Flags{}},
		{name: "plain", f: Flags{Endpoints: "http://127.0.0.1:2379,http://127.0.0.1:2381"}},
		{name: "tls", f: Flags{Endpoints: "https://etcd:2379", CAFile: "ca", CertFile: "c", KeyFile: "k"}},
		{name: "cert without key", f: Flags{Endpoints: "https://etcd:2379", CertFile: "c"}, wantErr: "both --etcd-cert-file and --etcd-key-file"},
		{name: "tls files on http", f: Flags{Endpoints: "http://etcd:2379", CAFile: "ca"}, wantErr: "plain http but TLS files are given"},
		{name: "no scheme", f: Flags{Endpoints: "etcd:2379"}, wantErr: "want http:// or https://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestConfigLoadsTLSFiles: https endpoints get the CA as roots and the
// client certificate; a CA file without a certificate in it is refused at
// start-up.
func TestConfigLoadsTLSFiles(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, cert, key := write("ca.crt", certPEM), write("tls.crt", certPEM), write("tls.key", keyPEM)
	f := Flags{Endpoints: "https://127.0.0.1:2379", CAFile: ca, CertFile: cert, KeyFile: key}
	cfg, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || cfg.TLS.RootCAs == nil || len(cfg.TLS.Certificates) != 1 {
		t.Fatalf("TLS config %+v: want roots and one client certificate", cfg.TLS)
	}
	plain := Flags{Endpoints: "http://127.0.0.1:2379"}
	if cfg, err := plain.Config(); err != nil || cfg.TLS != nil {
		t.Fatalf("plain endpoints: TLS %v, err %v; want no TLS", cfg.TLS, err)
	}
	f.CAFile = write("empty.crt", []byte("not a certificate"))
	if _, err := f.Config(); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("bad CA file: error %v", err)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// Args give another process the same settings: parsed back, they are
// the flags they came from.
func TestArgsRoundTrip(t *testing.T) {
	for _, want := range []Flags{
		{Endpoints: "http://127.0.0.1:2379"},
		{Endpoints: "https://a:2379,https://b:2379", CAFile: "/ca.crt", CertFile: "/tls.crt", KeyFile: "/tls.key"},
	} {
		var got Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		got.Bind(fs, "")
		if err := fs.Parse(want.Args()); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Args %v parsed back to %+v, want %+v", want.Args(), got, want)
		}
	}
	if n := len((&Flags{Endpoints: "http://e:2379"}).Args()); n != 1 {
		t.Errorf("plaintext flags: %d args, want only --etcd-endpoints", n)
	}
}
