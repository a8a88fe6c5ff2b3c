package icap

import (
	"io"
	"maps"
)

// NoModification answers r with "no modification" in the cheapest way the
// client allows: 204 No Content (inside a preview, or with Allow: 204),
// else 206 Partial Content with use-original-body=0 (Allow: 206), else
// the unchanged message streamed back (Echo).
func NoModification(w ResponseWriter, r *Request) error {
	if r.Can204() {
		w.WriteHeader(StatusNoContent, nil, false)
		return nil
	}
	if r.Can206() {
		w.WriteHeader(StatusPartialContent, r.Message(), true)
		w.UseOriginalBody(0)
		return nil
	}
	return Echo(w, r)
}

// Echo streams the unchanged encapsulated message back with a 200 OK,
// trailers included (when the client allows them). For OPTIONS it answers
// 200 with no body.
func Echo(w ResponseWriter, r *Request) error {
	msg := r.Message()
	hasBody := msg != nil && r.HasBody()
	if rw, ok := w.(*response); ok {
		rw.unmodified = true
	}
	w.WriteHeader(StatusOK, msg, hasBody)
	if !hasBody {
		return nil
	}
	if _, err := io.Copy(w, r.Body); err != nil {
		return err
	}
	if len(r.Trailer) > 0 {
		maps.Copy(w.Trailer(), r.Trailer)
	}
	return nil
}
