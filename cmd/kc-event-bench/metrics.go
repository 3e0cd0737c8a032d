package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape returns the sum over all label sets of each metric of a /metrics
// page whose name is in names.
func scrape(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m, err := parseMetrics(resp.Body, expfmt.ResponseFormat(resp.Header), names...)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return m, nil
}

// parseMetrics sums the samples of the named counters and gauges of an
// exposition in format; a name that has no sample is missing from the map.
func parseMetrics(r io.Reader, format expfmt.Format, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	dec := expfmt.NewDecoder(r, format)
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		if !want[mf.GetName()] {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[mf.GetName()] += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[mf.GetName()] += m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[mf.GetName()] += m.GetUntyped().GetValue()
			default:
				return nil, fmt.Errorf("metric %s is a %s, want a counter or a gauge", mf.GetName(), mf.GetType())
			}
		}
	}
}
