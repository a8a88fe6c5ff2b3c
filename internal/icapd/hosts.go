package icapd

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/edgeadapt/edgeadapt/internal/adapt"
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
// from: the spand client of -spand, or the store or client found behind
// the configured Predictor.
func (pl *Pipeline) measurementSource() adapt.PredictionSource {
	if pl.spand != nil {
		return listable(pl.spand.Source, 0)
	}
	return listable(pl.cfg.Predictor, 0)
}

// maxSourceDepth bounds how deep listable looks through wrappers.
const maxSourceDepth = 8

// listable finds, behind a predictor, the first source that can list
// what it knows (a spand.Client or a spand.Store). It looks through an
// *adapt.Spand (its Source), through predictors that ask others in turn
// (a slice of them, such as a chain that asks the congestion manager
// first), and through wrappers that keep the source they refine in a
// field named Source (such as one that hides some answers): those change
// what a prediction answers, not which hosts are known. The walk is by
// reflection so that a new wrapper needs no change here.
func listable(x any, depth int) adapt.PredictionSource {
	if x == nil || depth > maxSourceDepth {
		return nil
	}
	switch v := x.(type) {
	case hostLister:
		if s, ok := v.(adapt.PredictionSource); ok {
			return s
		}
	case spand.Store:
		return v
	case *adapt.Spand:
		return listable(v.Source, depth+1)
	}
	rv := reflect.ValueOf(x)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range rv.Len() {
			if e := rv.Index(i); e.CanInterface() {
				if s := listable(e.Interface(), depth+1); s != nil {
					return s
				}
			}
		}
	case reflect.Struct:
		if f := rv.FieldByName("Source"); f.IsValid() && f.CanInterface() {
			return listable(f.Interface(), depth+1)
		}
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
