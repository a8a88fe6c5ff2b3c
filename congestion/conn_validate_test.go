package congestion

import (
	"testing"
	"time"
)

func TestValidateWindowGrowsOnlyWhenTheWindowIsUsed(t *testing.T) {
	const mss = 1000
	now := time.Unix(0, 0)
	for _, tc := range []struct {
		name     string
		inFlight int
		mode     LossMode
		want     int // window after one update acking 5000 bytes
	}{
		{"window full: slow start grows", 10_000 - 5000, NoCongestion, 15_000},
		{"within three segments of full: grows", 10_000 - 5000 - 2*mss, NoCongestion, 15_000},
		{"half used: no growth", 0, NoCongestion, 10_000},
		{"unused window still halves on loss", 0, LossFeedback, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ValidateWindow(NewAIMD(ControllerConfig{MSS: mss, InitialWindow: 10_000, MinWindow: 2 * mss, MaxWindow: 1 << 20, Now: now}), mss)
			c.OnFeedback(Feedback{Now: now.Add(time.Second), Acked: 5000, Mode: tc.mode, InFlight: tc.inFlight,
				SRTT: 100 * time.Millisecond, HasFeedback: true})
			if got := c.Window(); got != tc.want {
				t.Errorf("window = %d, want %d", got, tc.want)
			}
		})
	}
}
