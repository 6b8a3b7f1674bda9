// Command omcheck validates one metrics exposition, read from stdin, with the parsers that
// Prometheus 3.16 scrapes with (github.com/prometheus/prometheus/model/textparse), and prints what
// Prometheus would ingest from it.
//
//	omcheck -format openmetrics   the OpenMetrics 1.0 parser, which textparse.New picks for the
//	                              Content-Type application/openmetrics-text; version=1.0.0
//	omcheck -format text          the parser for the Prometheus text format 0.0.4 (text/plain)
//
// Both parsers run with the options the scrape loop uses by default: no type-and-unit labels, and
// OpenMetrics `_created` lines kept as series (their skipping follows the off-by-default
// created-timestamp-zero-ingestion feature). Label sets are then checked as the scrape loop checks
// them (a metric name, valid under Prometheus 3's default UTF-8 name validation, no label name
// twice), and each sample against the metadata lines before it: it must be one of the samples of
// the family that the last # TYPE/# HELP/# UNIT named (an OpenMetrics counter `x` has `x_total`
// and `x_created`; a 0.0.4 counter `x_total` has `x_total`), and that family must have both a
// # TYPE and a # HELP. A series that appears twice is a problem too.
//
// Exit status 0: stdout holds one JSON object per line, each family before its samples:
//
//	{"family":"x","type":"counter","help":"Requests.","unit":""}
//	{"name":"x_total","labels":{"route":"a"},"value":3}
//
// where a value that JSON cannot hold is the string "+Inf", "-Inf" or "NaN". Exit status 1: stderr
// holds one line per problem, and stdout is empty. Exit status 2: the command line was wrong.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

type family struct {
	Name    string `json:"family"`
	Type    string `json:"type"`
	Help    string `json:"help"`
	Unit    string `json:"unit"`
	hasType bool
	hasHelp bool
	hasUnit bool
	samples []sample
}

type sample struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Value  jsonFloat         `json:"value"`
}

type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	value := float64(f)
	switch {
	case math.IsNaN(value):
		return []byte(`"NaN"`), nil
	case math.IsInf(value, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(value, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(value)
}

// exposition describes one format: how to parse it, which sample names each metric type gives a
// family, and which lines of the input produce parser entries.
type exposition struct {
	newParser func(b []byte) textparse.Parser
	// sampleSuffixes maps a metric type to the suffixes that, appended to the family name, make its
	// sample names ("" is the family name itself).
	sampleSuffixes map[model.MetricType][]string
	// entryLines lists, for each entry the parser returns, its 1-based line in the input.
	entryLines func(lines []string) []int
}

var expositions = map[string]exposition{
	// OpenMetrics 1.0 (https://prometheus.io/docs/specs/om/open_metrics_spec/#metric-types).
	"openmetrics": {
		newParser: func(b []byte) textparse.Parser {
			return textparse.NewOpenMetricsParser(b, labels.NewSymbolTable())
		},
		sampleSuffixes: map[model.MetricType][]string{
			model.MetricTypeCounter:        {"_total", "_created"},
			model.MetricTypeGauge:          {""},
			model.MetricTypeHistogram:      {"_bucket", "_count", "_sum", "_created"},
			model.MetricTypeGaugeHistogram: {"_bucket", "_gcount", "_gsum"},
			model.MetricTypeSummary:        {"", "_count", "_sum", "_created"},
			model.MetricTypeInfo:           {"_info"},
			model.MetricTypeStateset:       {""},
			model.MetricTypeUnknown:        {""},
		},
		// OpenMetrics has neither blank lines nor comments, and the parser returns every other line
		// as one entry (it would skip _created lines only with WithOMParserSTSeriesSkipped).
		entryLines: func(lines []string) []int {
			numbers := make([]int, len(lines))
			for index := range lines {
				numbers[index] = index + 1
			}
			return numbers
		},
	},
	// Prometheus text format 0.0.4; the parser reports `untyped` as unknown.
	"text": {
		newParser: func(b []byte) textparse.Parser {
			return textparse.NewPromParser(b, labels.NewSymbolTable(), false)
		},
		sampleSuffixes: map[model.MetricType][]string{
			model.MetricTypeCounter:   {""},
			model.MetricTypeGauge:     {""},
			model.MetricTypeHistogram: {"_bucket", "_count", "_sum"},
			model.MetricTypeSummary:   {"", "_count", "_sum"},
			model.MetricTypeUnknown:   {""},
		},
		// The parser skips blank lines (also those of spaces and tabs) and returns a comment entry
		// for every other line that is not metadata or a sample.
		entryLines: func(lines []string) []int {
			numbers := make([]int, 0, len(lines))
			for index, line := range lines {
				if strings.Trim(line, " \t") != "" {
					numbers = append(numbers, index+1)
				}
			}
			return numbers
		},
	},
}

func main() {
	formatName := flag.String("format", "", "exposition format on stdin: openmetrics or text")
	flag.Parse()
	format, known := expositions[*formatName]
	if !known || flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "omcheck: usage: omcheck -format openmetrics|text <exposition (got -format %q)\n", *formatName)
		os.Exit(2)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "omcheck: reading stdin:", err)
		os.Exit(2)
	}
	families, problems := check(format, input)
	if len(problems) > 0 {
		for _, problem := range problems {
			fmt.Fprintln(os.Stderr, problem)
		}
		os.Exit(1)
	}
	if err := write(os.Stdout, families); err != nil {
		fmt.Fprintln(os.Stderr, "omcheck: writing stdout:", err)
		os.Exit(2)
	}
}

type checker struct {
	format   exposition
	families []*family
	byName   map[string]*family
	current  *family
	// seriesLines maps each series seen (its label set, name included) to its line.
	seriesLines map[string]int
	problems    []string
}

func check(format exposition, input []byte) ([]*family, []string) {
	lines := strings.Split(strings.TrimSuffix(string(input), "\n"), "\n")
	entryLines := format.entryLines(lines)
	c := &checker{format: format, byName: map[string]*family{}, seriesLines: map[string]int{}}
	parser := format.newParser(input)
	for entry := 0; ; entry++ {
		line := 0
		if entry < len(entryLines) {
			line = entryLines[entry]
		}
		kind, err := parser.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			c.parseError(line, lines, err)
			break
		}
		c.entry(parser, kind, line)
	}
	return c.families, c.problems
}

func (c *checker) problem(line int, format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
}

func (c *checker) parseError(line int, lines []string, err error) {
	if line == 0 || line > len(lines) {
		c.problems = append(c.problems, fmt.Sprintf("end of input: %v", err))
		return
	}
	c.problem(line, "%v (line %q)", err, lines[line-1])
}

func (c *checker) entry(parser textparse.Parser, kind textparse.Entry, line int) {
	switch kind {
	case textparse.EntryType:
		name, metricType := parser.Type()
		f := c.metadata(string(name), line, "TYPE", func(f *family) bool { return f.hasType })
		f.Type, f.hasType = string(metricType), true
	case textparse.EntryHelp:
		name, help := parser.Help()
		f := c.metadata(string(name), line, "HELP", func(f *family) bool { return f.hasHelp })
		f.Help, f.hasHelp = string(help), true
	case textparse.EntryUnit:
		name, unit := parser.Unit()
		f := c.metadata(string(name), line, "UNIT", func(f *family) bool { return f.hasUnit })
		f.Unit, f.hasUnit = string(unit), true
	case textparse.EntrySeries:
		var series labels.Labels
		parser.Labels(&series)
		_, _, value := parser.Series()
		c.sample(series, value, line)
	case textparse.EntryHistogram:
		c.problem(line, "a native histogram sample, which neither text format can carry")
	case textparse.EntryComment:
	}
}

// metadata returns the family that a # TYPE, # HELP or # UNIT line names, and makes it current.
func (c *checker) metadata(name string, line int, keyword string, alreadySet func(*family) bool) *family {
	f, seen := c.byName[name]
	switch {
	case !seen:
		f = &family{Name: name, Type: string(model.MetricTypeUnknown)}
		c.byName[name] = f
		c.families = append(c.families, f)
	case f != c.current:
		c.problem(line, "# %s for family %q, whose lines ended earlier (a family's lines must be together)", keyword, name)
	case alreadySet(f):
		c.problem(line, "a second # %s for family %q", keyword, name)
	case len(f.samples) > 0:
		c.problem(line, "# %s for family %q after its samples", keyword, name)
	}
	c.current = f
	return f
}

func (c *checker) sample(series labels.Labels, value float64, line int) {
	name := series.Get(model.MetricNameLabel)
	if !series.IsValid(model.UTF8Validation) {
		c.problem(line, "invalid metric name or label names: %s", series.String())
		return
	}
	if label, duplicated := series.HasDuplicateLabelNames(); duplicated {
		c.problem(line, "label %q twice in %s", label, series.String())
		return
	}
	key := series.String()
	if first, seen := c.seriesLines[key]; seen {
		c.problem(line, "duplicate series %s (first on line %d)", key, first)
		return
	}
	c.seriesLines[key] = line
	f := c.current
	if f == nil {
		c.problem(line, "sample %q has no # TYPE and no # HELP (no metadata line precedes it)", name)
		return
	}
	suffixes := c.format.sampleSuffixes[model.MetricType(f.Type)]
	if !hasSampleName(f.Name, suffixes, name) {
		c.problem(line, "sample %q is not a sample of the %s family %q before it (those are %s), and has no # TYPE and no # HELP of its own",
			name, f.Type, f.Name, strings.Join(sampleNames(f.Name, suffixes), ", "))
		return
	}
	if len(f.samples) == 0 {
		if !f.hasType {
			c.problem(line, "sample %q: its family %q has no # TYPE", name, f.Name)
		}
		if !f.hasHelp {
			c.problem(line, "sample %q: its family %q has no # HELP", name, f.Name)
		}
	}
	labelMap := map[string]string{}
	series.Range(func(label labels.Label) {
		if label.Name != model.MetricNameLabel {
			labelMap[label.Name] = label.Value
		}
	})
	f.samples = append(f.samples, sample{Name: name, Labels: labelMap, Value: jsonFloat(value)})
}

func hasSampleName(familyName string, suffixes []string, name string) bool {
	for _, suffix := range suffixes {
		if name == familyName+suffix {
			return true
		}
	}
	return false
}

func sampleNames(familyName string, suffixes []string) []string {
	names := make([]string, len(suffixes))
	for index, suffix := range suffixes {
		names[index] = familyName + suffix
	}
	return names
}

func write(out io.Writer, families []*family) error {
	writer := bufio.NewWriter(out)
	encoder := json.NewEncoder(writer)
	encoder.SetEscapeHTML(false)
	for _, f := range families {
		if err := encoder.Encode(f); err != nil {
			return err
		}
		for _, s := range f.samples {
			if err := encoder.Encode(s); err != nil {
				return err
			}
		}
	}
	return writer.Flush()
}
