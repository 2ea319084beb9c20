package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits keep a replay bounded whatever the file says.
const (
	MaxNodes        = 100_000
	MaxDuration     = 24 * time.Hour
	MaxWorkloads    = 1000
	MaxPhases       = 1000
	MaxPodsTotal    = 5_000_000
	MaxRate         = 1e6  // requests per second per pod
	MaxBytes        = 1e10 // bytes per request
	MaxNodeSeconds  = 2e8  // nodes x seconds
	maxFileBytes    = 4 << 20
	maxYAMLNodes    = 200_000
	defaultScenario = "scenario"
)

var workloadName = regexp.MustCompile(`^[A-Z][A-Za-z]{0,62}/[a-z0-9.-]{0,253}/[A-Za-z0-9._:@-]{1,253}$`)

// Decode reads and validates a version 1 scenario file.
func Decode(r io.Reader) (*Scenario, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, &Error{Field: "file", Msg: fmt.Sprintf("larger than %d bytes", maxFileBytes)}
	}
	return DecodeBytes(data)
}

// DecodeBytes is Decode over a byte slice.
func DecodeBytes(data []byte) (*Scenario, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Field: "file", Msg: "empty document"}
		}
		return nil, &Error{Line: yamlErrLine(err), Field: "file", Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Line: extra.Line, Field: "file", Msg: "more than one YAML document"}
	}
	if count(&doc, 0) > maxYAMLNodes {
		return nil, &Error{Field: "file", Msg: "too many YAML nodes"}
	}
	d := decoder{}
	s, err := d.scenario(&doc)
	if err != nil {
		return nil, err
	}
	return s, nil
}

var lineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func count(n *yaml.Node, depth int) int {
	if depth > 64 {
		return maxYAMLNodes + 1
	}
	c := 1
	for _, k := range n.Content {
		c += count(k, depth+1)
		if c > maxYAMLNodes {
			return c
		}
	}
	return c
}

type decoder struct{}

func errAt(n *yaml.Node, field, format string, args ...any) error {
	if field == "" {
		field = "file"
	}
	return &Error{Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// fields checks that n is a mapping with only allowed keys and returns key -> (key node, value node).
func fields(n *yaml.Node, field string, allowed ...string) (map[string][2]*yaml.Node, error) {
	if n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode {
		return nil, errAt(n, field, "aliases and nested documents are not supported")
	}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, field, "want a mapping, got %s", kindName(n))
	}
	out := make(map[string][2]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k, field, "keys must be strings")
		}
		name := join(field, k.Value)
		ok := false
		for _, a := range allowed {
			if a == k.Value {
				ok = true
				break
			}
		}
		if !ok {
			return nil, errAt(k, name, "unknown key (allowed: %s)", strings.Join(allowed, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, errAt(k, name, "duplicate key")
		}
		if v.Kind == yaml.AliasNode {
			return nil, errAt(v, name, "aliases are not supported")
		}
		out[k.Value] = [2]*yaml.Node{k, v}
	}
	return out, nil
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func scalar(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errAt(n, field, "want a scalar, got %s", kindName(n))
	}
	return n.Value, nil
}

func str(n *yaml.Node, field string) (string, error) {
	v, err := scalar(n, field)
	if err != nil {
		return "", err
	}
	if n.Tag != "!!str" {
		return "", errAt(n, field, "want a string, got %q", v)
	}
	return v, nil
}

func integer(n *yaml.Node, field string, lo, hi int64) (int64, error) {
	v, err := scalar(n, field)
	if err != nil {
		return 0, err
	}
	if n.Tag != "!!int" {
		return 0, errAt(n, field, "want an integer, got %q", v)
	}
	i, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, 64)
	if err != nil {
		return 0, errAt(n, field, "want an integer, got %q", v)
	}
	if i < lo || i > hi {
		return 0, errAt(n, field, "%d out of range [%d, %d]", i, lo, hi)
	}
	return i, nil
}

func float(n *yaml.Node, field string, lo, hi float64) (float64, error) {
	v, err := scalar(n, field)
	if err != nil {
		return 0, err
	}
	if n.Tag != "!!int" && n.Tag != "!!float" {
		return 0, errAt(n, field, "want a number, got %q", v)
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(v, "_", ""), 64)
	if err != nil {
		return 0, errAt(n, field, "want a number, got %q", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < lo || f > hi {
		return 0, errAt(n, field, "%s out of range [%g, %g]", v, lo, hi)
	}
	return f, nil
}

func boolean(n *yaml.Node, field string) (bool, error) {
	v, err := scalar(n, field)
	if err != nil {
		return false, err
	}
	if n.Tag != "!!bool" {
		return false, errAt(n, field, "want true or false, got %q", v)
	}
	return v == "true" || v == "True" || v == "TRUE", nil
}

// duration accepts Go durations such as 30s, 10m, 1h30m; whole seconds only.
func duration(n *yaml.Node, field string, hi time.Duration) (time.Duration, error) {
	v, err := scalar(n, field)
	if err != nil {
		return 0, err
	}
	d, perr := time.ParseDuration(v)
	if perr != nil {
		return 0, errAt(n, field, "want a duration such as 30s or 10m, got %q", v)
	}
	if d < 0 || d > hi {
		return 0, errAt(n, field, "%s out of range [0s, %s]", v, hi)
	}
	if d%time.Second != 0 {
		return 0, errAt(n, field, "%s is not a whole number of seconds", v)
	}
	return d, nil
}

func required(m map[string][2]*yaml.Node, parent *yaml.Node, field string, keys ...string) error {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return errAt(parent, join(field, k), "required")
		}
	}
	return nil
}

func (d *decoder) scenario(doc *yaml.Node) (*Scenario, error) {
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) != 1 {
			return nil, errAt(doc, "file", "empty document")
		}
		root = doc.Content[0]
	}
	m, err := fields(root, "", "version", "name", "seed", "duration", "nodes", "apiserver", "workloads")
	if err != nil {
		return nil, err
	}
	if err := required(m, root, "", "version", "duration", "nodes", "workloads"); err != nil {
		return nil, err
	}
	s := &Scenario{Name: defaultScenario}
	v, err := integer(m["version"][1], "version", 0, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	if v != 1 {
		return nil, errAt(m["version"][1], "version", "unsupported version %d (want 1)", v)
	}
	s.Version = 1
	if kv, ok := m["name"]; ok {
		if s.Name, err = str(kv[1], "name"); err != nil {
			return nil, err
		}
	}
	if kv, ok := m["seed"]; ok {
		sv, err := scalar(kv[1], "seed")
		if err != nil {
			return nil, err
		}
		u, perr := strconv.ParseUint(strings.ReplaceAll(sv, "_", ""), 0, 64)
		if perr != nil || kv[1].Tag != "!!int" {
			return nil, errAt(kv[1], "seed", "want a non-negative integer, got %q", sv)
		}
		s.Seed = u
	}
	if s.Duration, err = duration(m["duration"][1], "duration", MaxDuration); err != nil {
		return nil, err
	}
	if s.Duration < time.Second {
		return nil, errAt(m["duration"][1], "duration", "must be at least 1s")
	}
	nodes, err := integer(m["nodes"][1], "nodes", 1, MaxNodes)
	if err != nil {
		return nil, err
	}
	s.Nodes = int(nodes)
	if float64(s.Nodes)*s.Duration.Seconds() > MaxNodeSeconds {
		return nil, errAt(m["nodes"][1], "nodes", "nodes x duration exceeds %g node-seconds", float64(MaxNodeSeconds))
	}
	if kv, ok := m["apiserver"]; ok {
		if s.APIServer, err = d.apiserver(kv[1]); err != nil {
			return nil, err
		}
	}
	wl := m["workloads"][1]
	if wl.Kind != yaml.SequenceNode {
		return nil, errAt(wl, "workloads", "want a list, got %s", kindName(wl))
	}
	if len(wl.Content) == 0 {
		return nil, errAt(wl, "workloads", "at least one workload required")
	}
	if len(wl.Content) > MaxWorkloads {
		return nil, errAt(wl, "workloads", "more than %d workloads", MaxWorkloads)
	}
	total := 0
	for i, n := range wl.Content {
		w, err := d.workload(n, fmt.Sprintf("workloads[%d]", i), s)
		if err != nil {
			return nil, err
		}
		total += w.Placement.Pods(s.Nodes)
		if total > MaxPodsTotal {
			return nil, errAt(n, fmt.Sprintf("workloads[%d].placement", i), "more than %d pods in total", MaxPodsTotal)
		}
		s.Workloads = append(s.Workloads, w)
	}
	// Entries sharing a name are pod groups of one workload: they must agree on protection.
	prot := map[string]bool{}
	for i, w := range s.Workloads {
		if p, ok := prot[w.Name]; ok && p != w.Protected {
			return nil, errAt(wl.Content[i], fmt.Sprintf("workloads[%d].protected", i), "entries named %s disagree on protected", w.Name)
		}
		prot[w.Name] = w.Protected
	}
	return s, nil
}

func (d *decoder) apiserver(n *yaml.Node) (APIServer, error) {
	a := APIServer{Seats: DefaultSeats, MetricsInterval: DefaultMetricsInterval}
	m, err := fields(n, "apiserver", "capacity_requests_per_s", "capacity_rx_bytes_per_s", "seats", "background_utilization",
		"metrics_interval", "metrics_unavailable")
	if err != nil {
		return a, err
	}
	if err := required(m, n, "apiserver", "capacity_requests_per_s", "capacity_rx_bytes_per_s"); err != nil {
		return a, err
	}
	if a.CapacityRequestsPerS, err = float(m["capacity_requests_per_s"][1], "apiserver.capacity_requests_per_s", 1e-3, 1e9); err != nil {
		return a, err
	}
	if a.CapacityRxBytesPerS, err = float(m["capacity_rx_bytes_per_s"][1], "apiserver.capacity_rx_bytes_per_s", 1, 1e15); err != nil {
		return a, err
	}
	if kv, ok := m["seats"]; ok {
		v, err := integer(kv[1], "apiserver.seats", 1, 1e6)
		if err != nil {
			return a, err
		}
		a.Seats = int(v)
	}
	if kv, ok := m["background_utilization"]; ok {
		if a.BackgroundUtilization, err = float(kv[1], "apiserver.background_utilization", 0, 0.95); err != nil {
			return a, err
		}
	}
	if kv, ok := m["metrics_interval"]; ok {
		if a.MetricsInterval, err = duration(kv[1], "apiserver.metrics_interval", 10*time.Minute); err != nil {
			return a, err
		}
		if a.MetricsInterval < time.Second {
			return a, errAt(kv[1], "apiserver.metrics_interval", "must be at least 1s")
		}
	}
	if kv, ok := m["metrics_unavailable"]; ok {
		l := kv[1]
		if l.Kind != yaml.SequenceNode {
			return a, errAt(l, "apiserver.metrics_unavailable", "want a list, got %s", kindName(l))
		}
		if len(l.Content) > 64 {
			return a, errAt(l, "apiserver.metrics_unavailable", "more than 64 periods")
		}
		for i, pn := range l.Content {
			field := fmt.Sprintf("apiserver.metrics_unavailable[%d]", i)
			pm, err := fields(pn, field, "at", "for")
			if err != nil {
				return a, err
			}
			if err := required(pm, pn, field, "at"); err != nil {
				return a, err
			}
			var p Outage
			if p.At, err = duration(pm["at"][1], join(field, "at"), MaxDuration); err != nil {
				return a, err
			}
			if kv, ok := pm["for"]; ok {
				if p.For, err = duration(kv[1], join(field, "for"), MaxDuration); err != nil {
					return a, err
				}
				if p.For == 0 {
					return a, errAt(kv[1], join(field, "for"), "must be > 0 (omit it for until the end)")
				}
			}
			a.MetricsUnavailable = append(a.MetricsUnavailable, p)
		}
	}
	return a, nil
}

func (d *decoder) workload(n *yaml.Node, field string, s *Scenario) (Workload, error) {
	var w Workload
	m, err := fields(n, field, "name", "protected", "placement", "start", "rollout", "per_pod", "phases")
	if err != nil {
		return w, err
	}
	if err := required(m, n, field, "name", "per_pod"); err != nil {
		return w, err
	}
	if w.Name, err = str(m["name"][1], join(field, "name")); err != nil {
		return w, err
	}
	if !workloadName.MatchString(w.Name) {
		return w, errAt(m["name"][1], join(field, "name"), "want Kind/namespace/name, got %q", w.Name)
	}
	if kv, ok := m["protected"]; ok {
		if w.Protected, err = boolean(kv[1], join(field, "protected")); err != nil {
			return w, err
		}
	}
	w.Placement = Placement{Kind: PlacementAll}
	if kv, ok := m["placement"]; ok {
		if w.Placement, err = placement(kv[1], join(field, "placement"), s.Nodes); err != nil {
			return w, err
		}
	}
	if kv, ok := m["start"]; ok {
		if w.Start, err = duration(kv[1], join(field, "start"), MaxDuration); err != nil {
			return w, err
		}
	}
	if kv, ok := m["rollout"]; ok {
		if w.Rollout, err = duration(kv[1], join(field, "rollout"), MaxDuration); err != nil {
			return w, err
		}
	}
	if w.PerPod, err = perPod(m["per_pod"][1], join(field, "per_pod")); err != nil {
		return w, err
	}
	if kv, ok := m["phases"]; ok {
		pn := kv[1]
		if pn.Kind != yaml.SequenceNode {
			return w, errAt(pn, join(field, "phases"), "want a list, got %s", kindName(pn))
		}
		if len(pn.Content) > MaxPhases {
			return w, errAt(pn, join(field, "phases"), "more than %d phases", MaxPhases)
		}
		for i, p := range pn.Content {
			ph, err := phase(p, fmt.Sprintf("%s.phases[%d]", field, i))
			if err != nil {
				return w, err
			}
			w.Phases = append(w.Phases, ph)
		}
	}
	return w, nil
}

func placement(n *yaml.Node, field string, nodes int) (Placement, error) {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "all" {
			return Placement{Kind: PlacementAll}, nil
		}
		return Placement{}, errAt(n, field, "want all, {count: N} or {fraction: F}, got %q", n.Value)
	}
	m, err := fields(n, field, "count", "fraction")
	if err != nil {
		return Placement{}, err
	}
	if len(m) != 1 {
		return Placement{}, errAt(n, field, "want exactly one of count, fraction")
	}
	if kv, ok := m["count"]; ok {
		c, err := integer(kv[1], join(field, "count"), 1, MaxPodsTotal)
		if err != nil {
			return Placement{}, err
		}
		return Placement{Kind: PlacementCount, Count: int(c)}, nil
	}
	f, err := float(m["fraction"][1], join(field, "fraction"), 0, 1)
	if err != nil {
		return Placement{}, err
	}
	if f <= 0 {
		return Placement{}, errAt(m["fraction"][1], join(field, "fraction"), "must be > 0")
	}
	return Placement{Kind: PlacementFraction, Fraction: f}, nil
}

func perPod(n *yaml.Node, field string) (PerPod, error) {
	p := PerPod{RxBytesScale: ScaleNone}
	m, err := fields(n, field, "requests_per_s", "rx_bytes_per_request", "rx_bytes_scale")
	if err != nil {
		return p, err
	}
	if err := required(m, n, field, "requests_per_s"); err != nil {
		return p, err
	}
	if p.RequestsPerS, err = float(m["requests_per_s"][1], join(field, "requests_per_s"), 0, MaxRate); err != nil {
		return p, err
	}
	if kv, ok := m["rx_bytes_per_request"]; ok {
		if p.RxBytesPerRequest, err = float(kv[1], join(field, "rx_bytes_per_request"), 0, MaxBytes); err != nil {
			return p, err
		}
	}
	if kv, ok := m["rx_bytes_scale"]; ok {
		v, err := str(kv[1], join(field, "rx_bytes_scale"))
		if err != nil {
			return p, err
		}
		switch Scale(v) {
		case ScaleNone, ScaleNodes, ScalePods:
			p.RxBytesScale = Scale(v)
		default:
			return p, errAt(kv[1], join(field, "rx_bytes_scale"), "want none, nodes or pods, got %q", v)
		}
	}
	return p, nil
}

func phase(n *yaml.Node, field string) (Phase, error) {
	var p Phase
	m, err := fields(n, field, "at", "requests_per_s", "for")
	if err != nil {
		return p, err
	}
	if err := required(m, n, field, "at", "requests_per_s"); err != nil {
		return p, err
	}
	if p.At, err = duration(m["at"][1], join(field, "at"), MaxDuration); err != nil {
		return p, err
	}
	if p.RequestsPerS, err = float(m["requests_per_s"][1], join(field, "requests_per_s"), 0, MaxRate); err != nil {
		return p, err
	}
	if kv, ok := m["for"]; ok {
		if p.For, err = duration(kv[1], join(field, "for"), MaxDuration); err != nil {
			return p, err
		}
		if p.For == 0 {
			return p, errAt(kv[1], join(field, "for"), "must be > 0 (omit it for until the end)")
		}
	}
	return p, nil
}
