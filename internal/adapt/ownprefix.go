package adapt

import (
	"context"
	"net/netip"

	"github.com/edgeadapt/edgeadapt/spand"
)

// ExceptOwnPrefix is a PredictionSource answering as Source does, except
// that it hides answers from spand's prefix table (source "prefix") for
// a prefix that holds one of the proxy's own addresses.
//
// The proxy reports each client as the local host and itself as the
// remote one, so spand's prefix table also aggregates, under the proxy's
// own /24, every client it served: a client that has no reports of its
// own and shares that /24 would otherwise get the figure of the others
// (a fast client the class of a slow one). Other answers pass.
type ExceptOwnPrefix struct {
	Source PredictionSource
	// Own reports whether the prefix holds an address of the proxy.
	Own func(netip.Prefix) bool
}

// Predict implements PredictionSource.
func (e ExceptOwnPrefix) Predict(ctx context.Context, addr netip.Addr, class spand.Class) (spand.Prediction, error) {
	p, err := e.Source.Predict(ctx, addr, class)
	if err != nil || p.Source != spand.KindPrefix.String() || e.Own == nil {
		return p, err
	}
	pfx, perr := netip.ParsePrefix(p.Key)
	if perr != nil {
		if a, aerr := netip.ParseAddr(p.Key); aerr == nil {
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if pfx.IsValid() && e.Own(pfx) {
		return spand.Prediction{Addr: addr, Class: class, Source: spand.KindNone.String()}, nil
	}
	return p, nil
}

var _ PredictionSource = ExceptOwnPrefix{}
