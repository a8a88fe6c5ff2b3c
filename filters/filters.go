package filters

// Validator is implemented by every filter. Validate checks the filter's
// configuration, loads what it needs (files, templates) and reports the
// first problem with the key that caused it. A filter must not be used
// before Validate returned nil.
type Validator interface {
	Validate() error
}

// Closer is implemented by filters that hold resources (open files,
// large tables) and want them released when a policy is replaced.
type Closer interface {
	Close() error
}
