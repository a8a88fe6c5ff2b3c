package icapd

import "github.com/edgeadapt/edgeadapt/icap"

// Service is one ICAP service of the daemon: a path, its handler and its
// registration (what OPTIONS announces and the mux enforces).
type Service struct {
	Path    string
	Handler icap.Handler
	Options icap.ServiceOptions
}

// Paths of the built-in services.
const (
	EchoPath    = "/echo"
	ReqmodPath  = "/reqmod"
	RespmodPath = "/respmod"
)

// passThrough answers every message "unchanged" in the cheapest way the
// client allows: 204 (in preview, or with Allow: 204), else 206 with
// use-original-body=0 (Allow: 206), else the message streamed back.
var passThrough = icap.HandlerFunc(func(w icap.ResponseWriter, r *icap.Request) {
	icap.NoModification(w, r)
})

// serviceOptions is the registration shared by the built-in services:
// everything a Squid needs to use 204 and 206, a 1 KB preview of every
// file type, and the client address in X-Client-IP.
func serviceOptions(name string, methods ...string) icap.ServiceOptions {
	return icap.ServiceOptions{
		Methods:         methods,
		Service:         "edgeadapt icapd " + name,
		ServiceID:       name,
		Allow204:        true,
		Allow206:        true,
		AllowTrailers:   true,
		Preview:         icap.DefaultPreview,
		TransferPreview: []string{"*"},
		XInclude:        []string{"X-Client-IP", "X-Authenticated-User"},
	}
}

// DefaultServices returns the services icapd runs when Config.Services is
// nil:
//
//	/echo     REQMOD and RESPMOD: the message unchanged (204/206 where allowed)
//	/reqmod   REQMOD pass-through, until the adaptation pipeline is wired in
//	/respmod  RESPMOD pass-through, likewise
//
// The adaptation pipeline replaces /reqmod and /respmod by passing its own
// Services in Config, or with Daemon.Handle while serving.
func DefaultServices() []Service {
	return []Service{
		{Path: EchoPath, Handler: passThrough, Options: serviceOptions("echo")},
		{Path: ReqmodPath, Handler: passThrough, Options: serviceOptions("reqmod", icap.MethodREQMOD)},
		{Path: RespmodPath, Handler: passThrough, Options: serviceOptions("respmod", icap.MethodRESPMOD)},
	}
}
