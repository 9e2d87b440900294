package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/rotor-dev/rotor/internal/certfile"
)

// Serve serves the webhook over TLS on addr until ctx ends. The key pair
// is read again whenever either file changes, so a rotated certificate
// (cert-manager, a Secret update reaching the mounted volume) is served
// without a restart.
func Serve(ctx context.Context, addr, certFile, keyFile string, h *Handler, log *slog.Logger) (net.Addr, error) {
	kp, err := certfile.Load(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("admission webhook: %w", err)
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
		TLSConfig: kp.ServerConfig(),
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
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
