package icapd

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgeadapt/edgeadapt/internal/adapt"
	"github.com/edgeadapt/edgeadapt/policy"
	"github.com/edgeadapt/edgeadapt/spand"
)

// ErrNoMeasurements is returned by Pipeline.Hosts and Pipeline.History
// when the pipeline has no measurement source (no spand, no store), or
// one that cannot list what it knows.
var ErrNoMeasurements = errors.New("icapd: the pipeline has no measurement source to list")

// hostLister is a source that lists what it knows over the network
// (*spand.Client: GET /v1/hosts).
type hostLister interface {
	Hosts(ctx context.Context, limit int) ([]spand.Prediction, error)
}

// historyClient is a source that serves key histories over the network
// (*spand.Client: GET /v1/history).
type historyClient interface {
	History(ctx context.Context, keys []spand.Key) (map[spand.Key][]spand.Sample, error)
}

// measurementSource returns the source the pipeline's predictions come
// from: the spand client of -spand, or the store or client behind the
// configured Predictor.
func (pl *Pipeline) measurementSource() adapt.PredictionSource {
	if pl.spand != nil {
		return pl.spand.Source
	}
	return sourceOf(pl.cfg.Predictor)
}

// sourceOf finds the spand source behind a predictor.
func sourceOf(p policy.Predictor) adapt.PredictionSource {
	if s, ok := p.(*adapt.Spand); ok {
		return s.Source
	}
	return nil
}

// Hosts lists what the pipeline's measurement source knows, at most limit
// entries (0: the source's default), most reported first within each
// kind (remote host, local host, prefix): the spand server's /v1/hosts
// with -spand, else the in-process store's entries.
func (pl *Pipeline) Hosts(ctx context.Context, limit int) ([]spand.Prediction, error) {
	switch src := pl.measurementSource().(type) {
	case hostLister:
		return src.Hosts(ctx, limit)
	case spand.Store:
		return src.Entries(ctx, limit)
	}
	return nil, ErrNoMeasurements
}

// History returns the live samples of keys from the same source, oldest
// first per key. ErrNoMeasurements means the source keeps no history.
func (pl *Pipeline) History(ctx context.Context, keys []spand.Key) (map[spand.Key][]spand.Sample, error) {
	switch src := pl.measurementSource().(type) {
	case historyClient:
		h, err := src.History(ctx, keys)
		var ae *spand.APIError
		if errors.As(err, &ae) && ae.Status == 501 {
			return nil, fmt.Errorf("%w: %v", ErrNoMeasurements, err)
		}
		return h, err
	case spand.HistoryReader:
		out := make(map[spand.Key][]spand.Sample, len(keys))
		for _, k := range keys {
			out[k] = src.History(k)
		}
		return out, nil
	}
	return nil, ErrNoMeasurements
}
