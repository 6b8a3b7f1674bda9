// Command otlpnames translates OpenTelemetry metric and attribute names into the Prometheus names
// that the OpenTelemetry Collector's Prometheus exporter would expose for them, using the same
// library (github.com/prometheus/otlptranslator) and the same default translation strategy.
//
// Input on stdin, one JSON object per line:
//
//	{"name":"http.server.request.duration","unit":"s","type":"histogram","labels":["http.request.method"]}
//
// Output on stdout, one JSON object per input line, in order:
//
//	{"metric":"http_server_request_duration_seconds","labels":["http_request_method"]}
//
// An input that cannot be translated yields {"error":"..."} on its line; malformed JSON or an
// unknown type ends the program with exit status 1 and a message on stderr.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/otlptranslator"
)

type instrument struct {
	Name   string   `json:"name"`
	Unit   string   `json:"unit"`
	Type   string   `json:"type"`
	Labels []string `json:"labels"`
}

type translation struct {
	Metric string   `json:"metric,omitempty"`
	Labels []string `json:"labels,omitempty"`
	Error  string   `json:"error,omitempty"`
}

var metricTypes = map[string]otlptranslator.MetricType{
	"monotonic_counter":     otlptranslator.MetricTypeMonotonicCounter,
	"non_monotonic_counter": otlptranslator.MetricTypeNonMonotonicCounter,
	"gauge":                 otlptranslator.MetricTypeGauge,
	"histogram":             otlptranslator.MetricTypeHistogram,
	"exponential_histogram": otlptranslator.MetricTypeExponentialHistogram,
	"summary":               otlptranslator.MetricTypeSummary,
}

// The Collector's Prometheus exporter defaults to UnderscoreEscapingWithSuffixes. Its label namer
// preserves runs of underscores unless the alpha (so, off by default) feature gate
// pkg.translator.prometheus.PermissiveLabelSanitization is enabled.
var strategy = otlptranslator.UnderscoreEscapingWithSuffixes

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "otlpnames:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) (err error) {
	metricNamer := otlptranslator.NewMetricNamer("", strategy)
	labelNamer := otlptranslator.LabelNamer{
		UTF8Allowed: !strategy.ShouldEscape(),
		// The Collector's exporters and Prometheus itself keep the "key" prefix for labels that
		// start with one underscore when escaping (deprecated in otlptranslator, still the default
		// behaviour of those callers).
		UnderscoreLabelSanitization: strategy.ShouldEscape(), //nolint:staticcheck
		PreserveMultipleUnderscores: true,
	}
	decoder := json.NewDecoder(bufio.NewReader(in))
	decoder.DisallowUnknownFields()
	writer := bufio.NewWriter(out)
	defer func() {
		err = errors.Join(err, writer.Flush())
	}()
	encoder := json.NewEncoder(writer)
	encoder.SetEscapeHTML(false)
	for line := 1; ; line++ {
		var item instrument
		decodeErr := decoder.Decode(&item)
		if errors.Is(decodeErr, io.EOF) {
			return nil
		}
		if decodeErr != nil {
			return fmt.Errorf("input item %d: %w", line, decodeErr)
		}
		metricType, known := metricTypes[item.Type]
		if !known {
			return fmt.Errorf("input item %d: unknown type %q (allowed: monotonic_counter, non_monotonic_counter, gauge, histogram, exponential_histogram, summary)", line, item.Type)
		}
		if encodeErr := encoder.Encode(translate(&metricNamer, &labelNamer, item, metricType)); encodeErr != nil {
			return encodeErr
		}
	}
}

func translate(metricNamer *otlptranslator.MetricNamer, labelNamer *otlptranslator.LabelNamer, item instrument, metricType otlptranslator.MetricType) translation {
	metric, err := metricNamer.Build(otlptranslator.Metric{Name: item.Name, Unit: item.Unit, Type: metricType})
	if err != nil {
		return translation{Error: fmt.Sprintf("metric %q: %v", item.Name, err)}
	}
	labels := make([]string, 0, len(item.Labels))
	for _, label := range item.Labels {
		translated, err := labelNamer.Build(label)
		if err != nil {
			return translation{Error: fmt.Sprintf("label %q of metric %q: %v", label, item.Name, err)}
		}
		labels = append(labels, translated)
	}
	return translation{Metric: metric, Labels: labels}
}
