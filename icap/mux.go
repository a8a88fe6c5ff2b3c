package icap

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of ServiceOptions.
const (
	DefaultOptionsTTL = time.Hour
	DefaultPreview    = 1024
	// NoPreview as ServiceOptions.Preview sends no Preview header: the
	// client sends whole bodies.
	NoPreview = -1
	// PreviewHeadersOnly as ServiceOptions.Preview sends "Preview: 0":
	// the client sends the headers and waits for 100 Continue or a final
	// answer before sending any body.
	PreviewHeadersOnly = -2
)

// ServiceOptions is a service's registration: what its OPTIONS response
// announces (RFC 3507 section 4.10.2) and what the mux enforces.
type ServiceOptions struct {
	// Methods lists REQMOD and/or RESPMOD; both if empty. Other methods
	// get 405.
	Methods []string
	// Service is the human-readable "Service" header.
	Service string
	// ServiceID is sent as Service-ID and as Squid's ServiceId.
	ServiceID string
	// ISTag, if set, is the service's fixed ISTag (quoted or not, at most
	// 32 bytes with quotes). If empty the ISTag is derived from a hash of
	// these options and Version, so it changes whenever they change.
	ISTag string
	// Version is mixed into the derived ISTag: set it to a digest of the
	// service's configuration (e.g. the policy file) so that clients
	// invalidate their caches when it changes.
	Version string
	// MaxConnections is announced as Max-Connections if > 0.
	MaxConnections int
	// OptionsTTL is announced as Options-TTL (seconds);
	// DefaultOptionsTTL if 0, omitted if negative.
	OptionsTTL time.Duration
	// Allow204, Allow206 and AllowTrailers announce "Allow: 204, 206,
	// trailers".
	Allow204, Allow206, AllowTrailers bool
	// Preview is the announced preview size: DefaultPreview if 0,
	// NoPreview or PreviewHeadersOnly for no header or "Preview: 0".
	Preview int
	// TransferPreview, TransferIgnore and TransferComplete are the file
	// extension lists of RFC 3507 section 4.10.2 ("*" for all).
	TransferPreview, TransferIgnore, TransferComplete []string
	// XInclude lists headers the client should add, e.g. X-Client-IP.
	XInclude []string
	// Header holds extra OPTIONS response fields.
	Header http.Header
	// Via, if set, is added as "Via: 1.0 <Via>" to the HTTP messages the
	// service returns modified (as in RFC 3507 sections 4.8.3 and 4.9.3),
	// e.g. "icap.example.org (edgeadapt respmod)". Unchanged echoes, 204
	// and 206 leave the message alone.
	Via string
}

// PreviewSize returns the announced preview size, or -1 for none.
func (o *ServiceOptions) PreviewSize() int {
	switch {
	case o.Preview == 0:
		return DefaultPreview
	case o.Preview == PreviewHeadersOnly:
		return 0
	case o.Preview < 0:
		return -1
	}
	return o.Preview
}

func (o *ServiceOptions) methods() []string {
	if len(o.Methods) == 0 {
		return []string{MethodREQMOD, MethodRESPMOD}
	}
	return o.Methods
}

// DeriveISTag returns the quoted ISTag derived from the options (and
// Version): a hash, so any change of the registration changes the tag.
func (o *ServiceOptions) DeriveISTag() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%q|%q|%q|%d|%d|%v|%v|%v|%d|%q|%q|%q|%q|",
		o.methods(), o.Service, o.ServiceID, o.Version, o.MaxConnections, o.OptionsTTL,
		o.Allow204, o.Allow206, o.AllowTrailers, o.PreviewSize(),
		o.TransferPreview, o.TransferIgnore, o.TransferComplete, o.XInclude)
	fmt.Fprintf(h, "%q|", o.Via)
	keys := slices.Sorted(maps.Keys(o.Header))
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%q|", k, o.Header[k])
	}
	return `"ea-` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
}

// service is an immutable registration.
type service struct {
	path    string
	h       Handler
	opts    ServiceOptions
	istag   string
	reqmod  bool
	respmod bool
	options http.Header // the OPTIONS response fields, read-only
	// optionsWire is options serialised once (sorted, without the fields
	// the server writes itself), so that OPTIONS costs no formatting.
	optionsWire []byte
}

// ServeMux routes ICAP requests by the path of the ICAP URI to registered
// services, answers OPTIONS from each registration, and answers 404 for
// unknown services and 405 for methods a service does not offer. It is
// safe for concurrent use, including re-registration while serving.
type ServeMux struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[string]*service]
}

// NewServeMux returns an empty ServeMux.
func NewServeMux() *ServeMux { return &ServeMux{} }

// Handle registers h for the service path (e.g. "/echo"), replacing any
// earlier registration. Its ISTag is opts.ISTag or DeriveISTag.
func (mux *ServeMux) Handle(path string, h Handler, opts ServiceOptions) {
	if h == nil {
		panic("icap: nil handler for " + path)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	svc := &service{path: path, h: h, opts: opts}
	svc.istag = opts.ISTag
	if svc.istag == "" {
		svc.istag = opts.DeriveISTag()
	}
	svc.istag = quoteISTag(svc.istag)
	for _, m := range opts.methods() {
		switch m {
		case MethodREQMOD:
			svc.reqmod = true
		case MethodRESPMOD:
			svc.respmod = true
		}
	}
	svc.setOptions()
	mux.update(func(m map[string]*service) { m[path] = svc })
}

// HandleFunc registers a handler function for the service path.
func (mux *ServeMux) HandleFunc(path string, f func(ResponseWriter, *Request), opts ServiceOptions) {
	mux.Handle(path, HandlerFunc(f), opts)
}

// Remove unregisters the service path.
func (mux *ServeMux) Remove(path string) {
	mux.update(func(m map[string]*service) { delete(m, path) })
}

// SetISTag changes the ISTag of a registered service, e.g. after its
// configuration was reloaded. It fails if the path is not registered.
func (mux *ServeMux) SetISTag(path, tag string) error {
	var err error
	mux.update(func(m map[string]*service) {
		old := m[path]
		if old == nil {
			err = fmt.Errorf("icap: SetISTag: no service %q", path)
			return
		}
		svc := *old
		svc.istag = quoteISTag(tag)
		svc.setOptions()
		m[path] = &svc
	})
	return err
}

// ISTag returns the ISTag of the service path, or "".
func (mux *ServeMux) ISTag(path string) string {
	if svc := mux.lookup(path); svc != nil {
		return svc.istag
	}
	return ""
}

// Paths returns the registered service paths, sorted.
func (mux *ServeMux) Paths() []string {
	m := mux.m.Load()
	if m == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(*m))
}

func (mux *ServeMux) update(f func(map[string]*service)) {
	mux.mu.Lock()
	defer mux.mu.Unlock()
	m := make(map[string]*service)
	if old := mux.m.Load(); old != nil {
		maps.Copy(m, *old)
	}
	f(m)
	mux.m.Store(&m)
}

func (mux *ServeMux) lookup(path string) *service {
	m := mux.m.Load()
	if m == nil {
		return nil
	}
	if svc := (*m)[path]; svc != nil {
		return svc
	}
	if len(path) > 1 && strings.HasSuffix(path, "/") {
		return (*m)[strings.TrimSuffix(path, "/")]
	}
	return nil
}

// quoteISTag quotes tag if needed and truncates it to 32 bytes (RFC 3507
// section 4.7 limits ISTag to 32 bytes including the quotes).
func quoteISTag(tag string) string {
	tag = strings.Trim(tag, `"`)
	if len(tag) > 30 {
		tag = tag[:30]
	}
	return `"` + tag + `"`
}

// ServeICAP dispatches r to its service.
func (mux *ServeMux) ServeICAP(w ResponseWriter, r *Request) {
	svc := mux.lookup(r.ServicePath())
	if svc == nil {
		w.WriteHeader(StatusNotFound, nil, false)
		return
	}
	if s, ok := w.(*response); ok {
		s.istag, s.via = svc.istag, svc.opts.Via
	} else {
		w.Header().Set("ISTag", svc.istag)
	}
	r.servicePath = svc.path
	switch {
	case r.Method == MethodOPTIONS:
		if rw, ok := w.(*response); ok && rw.header == nil {
			rw.header = svc.options // read-only use by writeHeader
			rw.wireHeader = svc.optionsWire
		} else {
			maps.Copy(w.Header(), svc.options)
		}
		w.WriteHeader(StatusOK, nil, false)
	case r.Method == MethodREQMOD && svc.reqmod, r.Method == MethodRESPMOD && svc.respmod:
		svc.h.ServeICAP(w, r)
	default:
		w.WriteHeader(StatusMethodNotAllowed, nil, false)
	}
}

// setOptions builds the service's OPTIONS response fields from its
// registration; every change of a registration makes a new service, so
// the serialised form never goes stale.
func (svc *service) setOptions() {
	svc.options = optionsHeader(svc)
	svc.optionsWire = []byte{} // a new array: svc may be a copy
	for _, k := range slices.Sorted(maps.Keys(svc.options)) {
		svc.optionsWire = appendFields(svc.optionsWire, http.Header{k: svc.options[k]}, skipICAP)
	}
}

// optionsHeader builds the OPTIONS response fields of a service.
func optionsHeader(svc *service) http.Header {
	o := &svc.opts
	h := make(http.Header)
	h["Methods"] = []string{strings.Join(o.methods(), ", ")}
	h["Istag"] = []string{svc.istag}
	if o.Service != "" {
		h["Service"] = []string{o.Service}
	}
	if o.ServiceID != "" {
		h["Service-Id"] = []string{o.ServiceID}
		h["Serviceid"] = []string{o.ServiceID}
	}
	if o.MaxConnections > 0 {
		h["Max-Connections"] = []string{strconv.Itoa(o.MaxConnections)}
	}
	switch ttl := o.OptionsTTL; {
	case ttl == 0:
		h["Options-Ttl"] = []string{strconv.Itoa(int(DefaultOptionsTTL / time.Second))}
	case ttl > 0:
		h["Options-Ttl"] = []string{strconv.Itoa(max(1, int(ttl/time.Second)))}
	}
	var allow []string
	if o.Allow204 {
		allow = append(allow, "204")
	}
	if o.Allow206 {
		allow = append(allow, "206")
	}
	if o.AllowTrailers {
		allow = append(allow, "trailers")
	}
	if len(allow) > 0 {
		h["Allow"] = []string{strings.Join(allow, ", ")}
	}
	if p := o.PreviewSize(); p >= 0 {
		h["Preview"] = []string{strconv.Itoa(p)}
	}
	if len(o.TransferPreview) > 0 {
		h["Transfer-Preview"] = []string{strings.Join(o.TransferPreview, ", ")}
	}
	if len(o.TransferIgnore) > 0 {
		h["Transfer-Ignore"] = []string{strings.Join(o.TransferIgnore, ", ")}
	}
	if len(o.TransferComplete) > 0 {
		h["Transfer-Complete"] = []string{strings.Join(o.TransferComplete, ", ")}
	}
	if len(o.XInclude) > 0 {
		h["X-Include"] = []string{strings.Join(o.XInclude, ", ")}
	}
	for k, v := range o.Header {
		h[http.CanonicalHeaderKey(k)] = slices.Clone(v)
	}
	return h
}
