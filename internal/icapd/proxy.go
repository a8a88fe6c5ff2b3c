package icapd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edgeadapt/edgeadapt/internal/proxy"
)

// DefaultProxyReadHeaderTimeout bounds how long the proxy waits for a
// client's request head.
const DefaultProxyReadHeaderTimeout = 30 * time.Second

// ProxyServer is icapd's HTTP forward proxy (-proxy): the pipeline's
// /reqmod and /respmod handlers run in process on what passes through.
type ProxyServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// StartProxy listens on addr and serves the forward proxy with pl's
// services until Shutdown.
func StartProxy(addr string, pl *Pipeline, logger *slog.Logger) (*ProxyServer, error) {
	if logger == nil {
		logger = slog.Default()
	}
	p := &proxy.Proxy{Logger: logger}
	for _, s := range pl.Services() {
		switch s.Path {
		case ReqmodPath:
			p.Reqmod, p.ReqmodPath = s.Handler, s.Path
		case RespmodPath:
			p.Respmod, p.RespmodPath = s.Handler, s.Path
		}
	}
	if p.Reqmod == nil || p.Respmod == nil {
		return nil, fmt.Errorf("proxy: pipeline lacks %s or %s", ReqmodPath, RespmodPath)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	ps := &ProxyServer{
		srv: &http.Server{
			Handler:           p.Handler(),
			ReadHeaderTimeout: DefaultProxyReadHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(ps.done)
		if err := ps.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("proxy: serve", "err", err)
		}
	}()
	logger.Info("proxy listening", "addr", ln.Addr().String())
	return ps, nil
}

// Addr returns the proxy's listening address.
func (ps *ProxyServer) Addr() string { return ps.ln.Addr().String() }

// Shutdown stops accepting and lets in-flight requests finish until ctx
// is done, then closes them. Hijacked CONNECT tunnels are not waited for.
func (ps *ProxyServer) Shutdown(ctx context.Context) error {
	err := ps.srv.Shutdown(ctx)
	if err != nil {
		ps.srv.Close()
	}
	<-ps.done
	return err
}
