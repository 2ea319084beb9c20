package aggproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Metrics is one /metrics scrape: value by series, written as exposed ("name" or `name{label="v"}`).
type Metrics map[string]float64

// Scrape reads http://addr/metrics (the whole body) within ctx.
func Scrape(ctx context.Context, addr string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	m := Metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			m[l[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: read: %w", addr, err)
	}
	return m, nil
}

// ByLabel returns the series of metric name by the value of its one label ("" for the unlabelled series).
func (m Metrics) ByLabel(name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, name)
		if !ok {
			continue
		}
		switch {
		case rest == "":
			out[""] = v
		case strings.HasPrefix(rest, "{") && strings.HasSuffix(rest, `"}`):
			if _, val, ok := strings.Cut(rest[1:len(rest)-2], `="`); ok {
				out[val] = v
			}
		}
	}
	return out
}

// Keys returns the keys of m sorted.
func Keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Pct returns the q quantile of sorted d (nearest rank), rounded to the millisecond.
func Pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := min(max(int(q*float64(len(d))+0.5)-1, 0), len(d)-1)
	return d[i].Round(time.Millisecond)
}
