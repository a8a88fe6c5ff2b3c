package adapt

import (
	"context"
	"net/netip"

	"github.com/edgeadapt/edgeadapt/policy"
)

// Chain is a policy.Predictor that asks its predictors in order and
// returns the first answer: in proxy mode, the congestion manager's live
// figure for the client (CM) before spand's or the in-process store's
// reports (Spand). Nil entries are skipped, so optional predictors can be
// listed unconditionally. The policy applies its trust rules
// (min_reports, max_age) to the answer given, not to the later ones.
type Chain []policy.Predictor

// Predict implements policy.Predictor.
func (c Chain) Predict(ctx context.Context, addr netip.Addr) (policy.Prediction, bool) {
	for _, p := range c {
		if p == nil {
			continue
		}
		if pr, ok := p.Predict(ctx, addr); ok {
			return pr, true
		}
	}
	return policy.Prediction{}, false
}

var _ policy.Predictor = Chain(nil)
