// Package certfile serves a TLS key pair from files that may be rotated
// under a running process (cert-manager renewing a Secret mounted as a
// volume), or, where no files are given, from a self-signed pair made at
// start.
package certfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"time"
)

// Pair is a certificate and key read from files, read again when either
// file's modification time or size changes. Safe for concurrent use.
type Pair struct {
	cert, key string

	mu    sync.Mutex
	stamp [2]stamp
	pair  *tls.Certificate
}

type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.ModTime(), fi.Size()}, nil
}

// Load reads the pair once, so a wrong path fails at start, not at the
// first handshake.
func Load(certFile, keyFile string) (*Pair, error) {
	p := &Pair{cert: certFile, key: keyFile}
	if _, err := p.Get(); err != nil {
		return nil, err
	}
	return p, nil
}

// Get returns the current pair. A rotation half done (one file new, or
// unreadable) keeps the last good pair until both files agree again.
func (p *Pair) Get() (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err1 := stampOf(p.cert)
	k, err2 := stampOf(p.key)
	if err := errors.Join(err1, err2); err != nil {
		if p.pair != nil {
			return p.pair, nil
		}
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if p.pair != nil && p.stamp == [2]stamp{c, k} {
		return p.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(p.cert, p.key)
	if err != nil {
		if p.pair != nil {
			return p.pair, nil
		}
		return nil, fmt.Errorf("TLS certificate %s, key %s: %w", p.cert, p.key, err)
	}
	p.pair, p.stamp = &pair, [2]stamp{c, k}
	return p.pair, nil
}

// ServerConfig is a TLS 1.2+ server configuration serving p.
func (p *Pair) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.Get() }}
}

// SelfSigned is a TLS 1.2+ server configuration with a key pair made now,
// valid for a year, for hosts (names or IP addresses). Clients cannot
// verify it; it keeps bearer tokens off the wire in clear, which is what a
// scraper authenticating with its ServiceAccount token needs (Prometheus'
// insecure_skip_verify, as for the kubelet's own metrics).
func SelfSigned(hosts ...string) (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "rotor-self-signed"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}
