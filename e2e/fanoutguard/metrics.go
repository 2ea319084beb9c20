package fanoutguard

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/e2e/incident"
)

// recordedPrefixes are the aggregator's metrics the guard records over time: its view of the API server (utilization
// per source, learned capacity, confidence) and the fleet rates it measured. The report plots the first two.
var recordedPrefixes = []string{"fanout_apiserver_", "fanout_headroom_", "fanout_workload_fleet_requests_per_second", "fanout_workload_fleet_rx_bytes_per_second"}

// maxSeries bounds what one run records, whatever the aggregator exposes.
const maxSeries = 64

// scrapeAggregator reads the aggregator's /metrics once and appends the recorded series' values.
func (g *Guard) scrapeAggregator(ctx context.Context, hc *http.Client) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.aggregatorMetrics, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape aggregator: status %d", resp.StatusCode)
	}
	now := time.Now()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		name, v, ok := parseSample(sc.Text())
		if !ok || !recorded(name) {
			continue
		}
		g.mu.Lock()
		i, seen := g.seriesIdx[name]
		if !seen && len(g.series) < maxSeries {
			i, seen = len(g.series), true
			g.seriesIdx[name] = i
			g.series = append(g.series, incident.MetricSeries{Name: name})
		}
		if seen {
			g.series[i].Points = append(g.series[i].Points, incident.MetricPoint{At: now, Value: v})
		}
		g.mu.Unlock()
	}
	return sc.Err()
}

func recorded(name string) bool {
	for _, p := range recordedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// parseSample splits one exposition line into its series (name with labels, as written) and value; comments, NaN
// and histogram parts are skipped.
func parseSample(line string) (string, float64, bool) {
	if line == "" || line[0] == '#' || strings.Contains(line, "_bucket{") {
		return "", 0, false
	}
	end := strings.LastIndexByte(line, '}')
	if end < 0 {
		end = strings.IndexByte(line, ' ') - 1
		if end < 0 {
			return "", 0, false
		}
	}
	name := line[:end+1]
	f := strings.Fields(line[end+1:])
	if len(f) == 0 {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v != v {
		return "", 0, false
	}
	return name, v, true
}

// Metrics returns the aggregator's recorded series so far.
func (g *Guard) Metrics() []incident.MetricSeries {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]incident.MetricSeries, len(g.series))
	for i, s := range g.series {
		out[i] = incident.MetricSeries{Name: s.Name, Points: append([]incident.MetricPoint(nil), s.Points...)}
	}
	return out
}
