package main

import (
	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/metrics"
)

// serveMetrics serves metrics on --metrics's address, when given, until
// the returned stop is called: before the tracer is loaded, so that a
// probe gets 503 (not synced) rather than a refused connection while it
// loads; attach then gives them the feed (call it before the tracer is
// closed: a scrape reads its ring buffer).
func serveMetrics(arg string, log zerolog.Logger) (m *metrics.Feed, stop func(), err error) {
	if arg == "" {
		return nil, func() {}, nil
	}
	addr, err := metrics.ListenAddr(arg)
	if err != nil {
		return nil, nil, usagef("--metrics: %v", err)
	}
	m = metrics.New(nil, nil)
	srv, err := metrics.Serve(addr, m)
	if err != nil {
		return nil, nil, err
	}
	log.Info().Str("metrics", "http://"+srv.Addr()+"/metrics").Str("health", "http://"+srv.Addr()+"/healthz").Msg("serving metrics")
	return m, func() { srv.Close() }, nil
}
