package icapd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edgeadapt/edgeadapt/congestion"
	"github.com/edgeadapt/edgeadapt/icap"
	"github.com/edgeadapt/edgeadapt/internal/promtext"
	"github.com/edgeadapt/edgeadapt/internal/proxy"
)

// DefaultProxyReadHeaderTimeout bounds how long the proxy waits for a
// client's request head.
const DefaultProxyReadHeaderTimeout = 30 * time.Second

// ProxyServer is icapd's HTTP forward proxy (-proxy): the pipeline's
// /reqmod and /respmod handlers run in process on what passes through.
type ProxyServer struct {
	srv  *http.Server
	ln   *proxy.Listener
	addr string
	done chan struct{}
}

// ProxyConfig configures StartProxy. Only Addr or Listener is needed.
type ProxyConfig struct {
	// Addr is the address to listen on, when Listener is nil.
	Addr string
	// Listener, if set, is served instead of listening on Addr (tests
	// listen inside a network namespace).
	Listener net.Listener
	// Manager, when set, gates the writes to each client: see
	// proxy.Listener. Conn configures its connections.
	Manager *congestion.Manager
	Conn    congestion.ConnConfig
	// Meter, when set, reports what each client connection delivered.
	Meter *proxy.Meter
}

// StartProxy serves the forward proxy with pl's services until Shutdown,
// its client connections wrapped as cfg says (proxy.Listener).
func StartProxy(cfg ProxyConfig, pl *Pipeline, logger *slog.Logger) (*ProxyServer, error) {
	if logger == nil {
		logger = slog.Default()
	}
	p := &proxy.Proxy{Logger: logger}
	// In process nothing stops sending a body before the answer starts
	// (Squid does, after 64 KB): hold bodies to transcode whole (up to
	// EarlyHoldBytes for those Squid would need committed early), so that
	// each response's header describes the body sent (no early commit,
	// whose header must not depend on the transcode's outcome).
	held := *pl.Service
	held.NoEarlyCommit = true
	for _, s := range pl.Services() {
		h := s.Handler
		if h == icap.Handler(pl.Service) {
			h = &held
		}
		switch s.Path {
		case ReqmodPath:
			p.Reqmod, p.ReqmodPath = h, s.Path
		case RespmodPath:
			p.Respmod, p.RespmodPath = h, s.Path
		}
	}
	if p.Reqmod == nil || p.Respmod == nil {
		return nil, fmt.Errorf("proxy: pipeline lacks %s or %s", ReqmodPath, RespmodPath)
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	addr := ln.Addr().String()
	pln := &proxy.Listener{Listener: ln, Manager: cfg.Manager, Conn: cfg.Conn, Meter: cfg.Meter, Logger: logger}
	ps := &ProxyServer{
		srv: &http.Server{
			Handler:           p.Handler(),
			ReadHeaderTimeout: DefaultProxyReadHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:   pln,
		addr: addr,
		done: make(chan struct{}),
	}
	go func() {
		defer close(ps.done)
		if err := ps.srv.Serve(pln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("proxy: serve", "err", err)
		}
	}()
	logger.Info("proxy listening", "addr", addr, "congestion_manager", cfg.Manager != nil, "reports", cfg.Meter != nil)
	return ps, nil
}

// Addr returns the proxy's listening address.
func (ps *ProxyServer) Addr() string { return ps.addr }

// WriteMetrics writes the proxy's own counters in the Prometheus text
// format: the client connections served without the congestion manager
// because it refused them.
func (ps *ProxyServer) WriteMetrics(w io.Writer) error {
	return promtext.Value(w, "icapd_proxy_ungated_connections_total", "counter", "Proxy client connections served without the congestion manager (it refused them).", ps.ln.Ungated())
}

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

// startProxyOf starts the proxy cfg asks for, with ms's congestion
// manager and meter; nil when it is off. When the default address is
// busy (a Squid on this host holds 3128), icapd goes on without the
// proxy and says how to choose another address.
func startProxyOf(cfg Config, pl *Pipeline, ms *Measurement, logger *slog.Logger) (*ProxyServer, error) {
	addr := cfg.proxy()
	if addr == "off" {
		return nil, nil
	}
	ps, err := StartProxy(ProxyConfig{Addr: addr, Manager: ms.Manager, Meter: ms.Meter}, pl, logger)
	if err != nil && !cfg.ProxySet {
		logger.Warn("icapd: the proxy's default address is busy; running without the proxy (choose one with -proxy ADDR, or -proxy off)", "addr", addr, "err", err)
		return nil, nil
	}
	return ps, err
}
