package icap_test

import (
	"io"
	"log/slog"
	"strconv"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func itoa(n int) string { return strconv.Itoa(n) }
