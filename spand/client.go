package spand

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Client.
const (
	DefaultCacheTTL        = 5 * time.Second
	DefaultMaxCacheEntries = 4096
	DefaultClientTimeout   = 2 * time.Second
)

// Client asks a performance server for predictions and sends it reports.
// Predictions are cached locally for CacheTTL, so a proxy can ask for
// every request without a round trip each time. It is safe for concurrent
// use; the zero value with BaseURL set is valid.
type Client struct {
	BaseURL    string       // e.g. "http://127.0.0.1:7070"
	HTTPClient *http.Client // nil: a client with DefaultClientTimeout
	Token      string       // bearer token for Report

	CacheTTL        time.Duration // DefaultCacheTTL; negative disables the cache
	MaxCacheEntries int           // DefaultMaxCacheEntries
	MaxBatch        int           // reports per POST (Report splits), DefaultMaxBatch

	mu    sync.Mutex
	cache map[cacheKey]cached

	// Testing.
	now func() time.Time
}

type cacheKey struct {
	addr  netip.Addr
	class Class
}

type cached struct {
	p       Prediction
	expires time.Time
}

// APIError is a non-2xx answer from the server.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("spand: server answered %d: %s", e.Status, e.Message)
}

var defaultHTTPClient = &http.Client{Timeout: DefaultClientTimeout}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return defaultHTTPClient
}

func (c *Client) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("spand: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("spand: read %s answer: %w", req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e errorBody
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return &APIError{resp.StatusCode, e.Error}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("spand: decode %s answer: %w", req.URL.Path, err)
	}
	return nil
}

// Predict returns the server's prediction for addr and class, from the
// local cache when a fresh one is there.
func (c *Client) Predict(ctx context.Context, addr netip.Addr, class Class) (Prediction, error) {
	addr = addr.Unmap()
	k := cacheKey{addr, class}
	now := c.clock()
	if c.CacheTTL >= 0 {
		c.mu.Lock()
		e, ok := c.cache[k]
		c.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.p, nil
		}
	}
	u := strings.TrimRight(c.BaseURL, "/") + "/v1/predict?" + url.Values{"addr": {addr.String()}, "class": {string(class)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Prediction{}, fmt.Errorf("spand: predict: %w", err)
	}
	var p Prediction
	if err := c.do(req, &p); err != nil {
		return Prediction{}, err
	}
	if c.CacheTTL >= 0 {
		ttl := c.CacheTTL
		if ttl == 0 {
			ttl = DefaultCacheTTL
		}
		c.store(k, cached{p, now.Add(ttl)}, now)
	}
	return p, nil
}

func (c *Client) store(k cacheKey, e cached, now time.Time) {
	limit := c.MaxCacheEntries
	if limit <= 0 {
		limit = DefaultMaxCacheEntries
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = make(map[cacheKey]cached)
	}
	if len(c.cache) >= limit {
		for ck, ce := range c.cache { // drop the expired, then any, to stay bounded
			if !now.Before(ce.expires) {
				delete(c.cache, ck)
			}
		}
		for ck := range c.cache {
			if len(c.cache) < limit {
				break
			}
			delete(c.cache, ck)
		}
	}
	c.cache[k] = e
}

// Report sends reports, in POSTs of at most MaxBatch. It stops at the
// first batch the server refuses; the batches before it were accepted.
func (c *Client) Report(ctx context.Context, reports []Report) error {
	n := c.MaxBatch
	if n <= 0 {
		n = DefaultMaxBatch
	}
	for len(reports) > 0 {
		batch := reports[:min(n, len(reports))]
		reports = reports[len(batch):]
		if err := c.post(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) post(ctx context.Context, reports []Report) error {
	body, err := json.Marshal(ReportBatch{reports})
	if err != nil {
		return fmt.Errorf("spand: encode reports: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+"/v1/reports", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("spand: report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	var ok ReportsAccepted
	return c.do(req, &ok)
}

// Hosts returns what the server knows, at most limit entries (0 = the
// server's default).
func (c *Client) Hosts(ctx context.Context, limit int) ([]Prediction, error) {
	return c.HostsWhere(ctx, limit, "", "")
}

// HostsWhere is Hosts restricted to one source (host, local or prefix;
// "" for all) and one class ("" for all): HostsWhere(ctx, 0, "local", "")
// lists the LAN's clients.
func (c *Client) HostsWhere(ctx context.Context, limit int, source string, class Class) ([]Prediction, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if source != "" {
		q.Set("source", source)
	}
	if class != "" {
		q.Set("class", string(class))
	}
	u := strings.TrimRight(c.BaseURL, "/") + "/v1/hosts"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("spand: hosts: %w", err)
	}
	var a HostsAnswer
	if err := c.do(req, &a); err != nil {
		return nil, err
	}
	return a.Entries, nil
}
