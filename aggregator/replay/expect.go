package replay

import (
	"bytes"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Expectation is a scenario's expected outcome, kept in a sidecar file <scenario>.expect.yaml next to it (the
// scenario format itself rejects unknown keys).
type Expectation struct {
	// Collapse says whether the unmitigated API server saturates within the scenario.
	Collapse bool `yaml:"collapse"`
	// Trips lists every workload that must trip; a trip of any other workload is a failure.
	Trips []ExpectedTrip `yaml:"trips"`
	// Alerts lists workloads that must raise at least one alert.
	Alerts []string `yaml:"alerts"`
	// NoFlapping: no workload trips again after a release (default true; set false to allow it).
	NoFlapping *bool `yaml:"no_flapping"`
	// Learned and Flag override trips/alerts for one capacity source (replay runs every scenario in both); a
	// field left out keeps the common value.
	Learned *ModeExpectation `yaml:"learned"`
	Flag    *ModeExpectation `yaml:"flag"`
}

// ModeExpectation overrides part of an expectation for one capacity source.
type ModeExpectation struct {
	Trips  *[]ExpectedTrip `yaml:"trips"`
	Alerts *[]string       `yaml:"alerts"`
}

// For returns the expectation for one capacity source (CapacityLearned or CapacityFlag).
func (e *Expectation) For(source string) *Expectation {
	out := *e
	out.Learned, out.Flag = nil, nil
	m := e.Learned
	if source == CapacityFlag {
		m = e.Flag
	}
	if m != nil {
		if m.Trips != nil {
			out.Trips = *m.Trips
		}
		if m.Alerts != nil {
			out.Alerts = *m.Alerts
		}
	}
	return &out
}

// ExpectedTrip is one workload that must trip.
type ExpectedTrip struct {
	Workload string `yaml:"workload"`
	// Before: the first trip happens no later than this (scenario time).
	Before time.Duration `yaml:"before"`
	// BeforeCollapse: the first trip comes before the projected collapse.
	BeforeCollapse bool `yaml:"before_collapse"`
	// MinLeadTime: projected collapse minus first trip is at least this.
	MinLeadTime time.Duration `yaml:"min_lead_time"`
}

// DecodeExpectation decodes a sidecar file strictly.
func DecodeExpectation(data []byte) (*Expectation, error) {
	var e Expectation
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("decode expectation: %w", err)
	}
	return &e, nil
}

// Check compares a replay's outcome with the expectation and returns every mismatch.
func (e *Expectation) Check(sum Summary, lines []Line) []string {
	var bad []string
	firstTrip := map[string]int64{}
	alerted := map[string]bool{}
	released := map[string]int64{}
	for _, l := range lines {
		switch l.Action {
		case "release":
			released[l.Workload] = l.T
		case "trip":
			if r, ok := released[l.Workload]; ok && (e.NoFlapping == nil || *e.NoFlapping) {
				bad = append(bad, fmt.Sprintf("%s: tripped again at t=%ds after its release at t=%ds (flapping)", l.Workload, l.T, r))
			}
			if _, ok := firstTrip[l.Workload]; !ok {
				firstTrip[l.Workload] = l.T
			}
		case "alert":
			alerted[l.Workload] = true
		}
	}
	if got := sum.ProjectedCollapseT != nil; got != e.Collapse {
		bad = append(bad, fmt.Sprintf("collapse: want %v, got %v", e.Collapse, got))
	}
	want := map[string]bool{}
	for _, tr := range e.Trips {
		want[tr.Workload] = true
		t, ok := firstTrip[tr.Workload]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: want a trip, got none", tr.Workload))
			continue
		}
		if tr.Before > 0 && t > int64(tr.Before/time.Second) {
			bad = append(bad, fmt.Sprintf("%s: first trip at t=%ds, want by %s", tr.Workload, t, tr.Before))
		}
		if tr.BeforeCollapse || tr.MinLeadTime > 0 {
			if sum.ProjectedCollapseT == nil {
				bad = append(bad, fmt.Sprintf("%s: want a trip before collapse, but no collapse was projected", tr.Workload))
				continue
			}
			lead := *sum.ProjectedCollapseT - t
			if lead <= 0 {
				bad = append(bad, fmt.Sprintf("%s: trip at t=%ds is not before the projected collapse at t=%ds", tr.Workload, t, *sum.ProjectedCollapseT))
			}
			if lead < int64(tr.MinLeadTime/time.Second) {
				bad = append(bad, fmt.Sprintf("%s: lead time %ds, want at least %s", tr.Workload, lead, tr.MinLeadTime))
			}
		}
	}
	for w, t := range firstTrip {
		if !want[w] {
			bad = append(bad, fmt.Sprintf("%s: unexpected trip at t=%ds", w, t))
		}
	}
	for _, w := range e.Alerts {
		if !alerted[w] && firstTrip[w] == 0 {
			if _, tripped := firstTrip[w]; !tripped {
				bad = append(bad, fmt.Sprintf("%s: want an alert, got none", w))
			}
		}
	}
	return bad
}
