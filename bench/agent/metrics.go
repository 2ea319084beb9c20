package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrape is one read of a /metrics endpoint: every sample line, by series (name with labels, as written).
type scrape struct {
	at     time.Time
	series map[string]float64
}

func scrapeMetrics(ctx context.Context, url string) (scrape, error) {
	s := scrape{at: time.Now(), series: map[string]float64{}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return s, fmt.Errorf("scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		s.series[line[:i]] = v
	}
	return s, nil
}

// sum adds the series of metric name whose labels contain every one of match (e.g. `workload="Deployment/`).
func (s scrape) sum(name string, match ...string) float64 {
	var t float64
	for k, v := range s.series {
		rest, ok := strings.CutPrefix(k, name)
		if !ok || (rest != "" && rest[0] != '{') {
			continue
		}
		all := true
		for _, m := range match {
			all = all && strings.Contains(rest, m)
		}
		if all {
			t += v
		}
	}
	return t
}

// probeMode is the mode label of fanout_agent_probe_mode whose value is 1 ("" when none).
func (s scrape) probeMode() string {
	for k, v := range s.series {
		if rest, ok := strings.CutPrefix(k, `fanout_agent_probe_mode{mode="`); ok && v == 1 {
			return strings.TrimSuffix(rest, `"}`)
		}
	}
	return ""
}
