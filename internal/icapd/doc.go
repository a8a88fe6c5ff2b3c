// Package icapd is the daemon behind cmd/icapd: it wires the icap library
// into a server an administrator runs next to Squid.
//
//   - Config and ParseFlags: the command line (-listen, -listen-tls with
//     -cert/-key, -admin, -allow, -shutdown-timeout, -access-log,
//     -log-level, -policy, -spand, -proxy, -proxy-cm, -store-snapshot);
//     the zero Config is valid.
//   - Daemon: the ICAP listeners (plain and ICAPS) behind a client
//     allow-list of CIDRs (default loopback only; others are closed at once,
//     logged and counted), the services on an icap.ServeMux, one access log
//     line per transaction (slog.TextHandler's format, appended by hand
//     for speed: method, service, status, bytes, duration, X-Client-IP)
//     and the metrics, both fed by
//     icap.Server.Observer and ConnState.
//   - Services: /echo, /reqmod and /respmod answer "unchanged" in the
//     cheapest way the client allows (204, else 206, else the message
//     streamed back). DefaultServices returns them; pass other Services to
//     New or call Daemon.Handle (also while serving) to plug in the
//     adaptation pipeline.
//   - Pipeline: the policy (policy.toml, hot-reloaded) and the /reqmod and
//     /respmod services that apply it, with predictions from the
//     congestion manager (proxy mode), spand or the in-process store.
//   - StartProxy: the HTTP forward proxy (-proxy, default 127.0.0.1:3128)
//     running the same services in process and writing to each client
//     through the congestion manager.
//   - Metrics: a hand-written Prometheus text exposition (no dependency) on
//     the admin server's /metrics, next to the dashboard at /, /healthz and
//     /debug/pprof/.
//   - Main: the whole command, including signals: SIGTERM or SIGINT drain
//     (healthz 503, stop accepting, finish in-flight transactions within
//     -shutdown-timeout) and exit 0; SIGHUP reloads the policy.
package icapd
