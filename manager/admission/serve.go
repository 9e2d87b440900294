package admission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Serve serves the webhook over TLS on addr until ctx ends. The key pair
// is read again whenever either file changes, so a rotated certificate
// (cert-manager, a Secret update reaching the mounted volume) is served
// without a restart.
func Serve(ctx context.Context, addr, certFile, keyFile string, h *Handler, log *slog.Logger) (net.Addr, error) {
	kp := &keyPair{cert: certFile, key: keyFile}
	if _, err := kp.get(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admission webhook: listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// The apiserver gives a webhook 10 s at most (timeoutSeconds).
		ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() }},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admission webhook stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("admission webhook serving", "addr", l.Addr().String(), "path", Path, "cert", certFile)
	return l.Addr(), nil
}

// keyPair is a certificate and key read from files, read again when
// either file's modification time or size changes.
type keyPair struct {
	cert, key string

	mu    sync.Mutex
	stamp [2]fileStamp
	pair  *tls.Certificate
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, err1 := stampOf(k.cert)
	p, err2 := stampOf(k.key)
	if err := errors.Join(err1, err2); err != nil {
		if k.pair != nil {
			return k.pair, nil // mid-rotation: serve the last good pair
		}
		return nil, fmt.Errorf("admission webhook certificate: %w", err)
	}
	if k.pair != nil && k.stamp == [2]fileStamp{c, p} {
		return k.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if k.pair != nil {
			return k.pair, nil // a half-written rotation: try again at the next handshake
		}
		return nil, fmt.Errorf("admission webhook certificate %s, key %s: %w", k.cert, k.key, err)
	}
	k.pair, k.stamp = &pair, [2]fileStamp{c, p}
	return k.pair, nil
}
