package apiserverstats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The series read from kube-apiserver's /metrics.
const (
	MetricExecutingSeats  = "apiserver_flowcontrol_current_executing_seats"
	MetricNominalSeats    = "apiserver_flowcontrol_nominal_limit_seats"
	MetricInqueue         = "apiserver_flowcontrol_current_inqueue_requests"
	MetricWaitDuration    = "apiserver_flowcontrol_request_wait_duration_seconds"
	MetricRejected        = "apiserver_flowcontrol_rejected_requests_total"
	MetricRequestDuration = "apiserver_request_duration_seconds"
)

// ExemptLevel is the priority level whose requests bypass flow control (system:masters, health checks): it has no
// limit and is left out of every sum.
const ExemptLevel = "exempt"

var wanted = []string{MetricExecutingSeats, MetricNominalSeats, MetricInqueue, MetricWaitDuration, MetricRejected, MetricRequestDuration}

// Limits bound what is read from one page: it is input.
type Limits struct {
	// MaxBodyBytes: a larger page is refused.
	MaxBodyBytes int64
	// MaxLineBytes: a text-format line longer than this is refused.
	MaxLineBytes int
	// MaxSeries: more series of the wanted families than this and the page is refused.
	MaxSeries int
	// MaxLabelBytes: a series with a longer label value is skipped (and counted).
	MaxLabelBytes int
	// MaxLevels: priority levels beyond this many are skipped (and counted).
	MaxLevels int
	// MaxBuckets: histogram bounds beyond this many distinct values are skipped (and counted).
	MaxBuckets int
}

// DefaultLimits fit a large cluster's kube-apiserver page with room to spare.
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: 32 << 20, MaxLineBytes: 64 << 10, MaxSeries: 100_000, MaxLabelBytes: 256, MaxLevels: 64, MaxBuckets: 64}
}

// ErrTooLarge is returned when a page breaks a size limit.
var ErrTooLarge = errors.New("metrics page exceeds a limit")

// Histogram is a cumulative histogram (or the delta of two): Counts[i] counts observations <= Bounds[i]; +Inf is
// Count.
type Histogram struct {
	Bounds []float64
	Counts []float64
	Count  float64
	Sum    float64
}

// Level is one non-exempt priority level as read from one page (gauges now, counters cumulative).
type Level struct {
	Name                                     string
	ExecutingSeats, NominalSeats, Inqueue    float64
	Rejected                                 float64
	Wait                                     Histogram
	hasExec, hasNominal, hasInqueue, hasWait bool
}

// Page is what one /metrics page says about flow control and request latency.
type Page struct {
	// Levels by name, sorted; the exempt level is not among them.
	Levels []Level
	// RequestDuration sums apiserver_request_duration_seconds over every non-long-running verb (WATCH and CONNECT
	// are left out: their duration is the stream's lifetime).
	RequestDuration Histogram
	// Kinds is the same per kind of request (verb, group, resource, subresource, scope), cumulative count and sum;
	// at most as many kinds as the page had series.
	Kinds map[string]KindTotal
	// Series is how many series of the wanted families were read; Skipped how many were dropped by a limit or for a
	// bad value.
	Series, Skipped int
}

// KindTotal is one kind of request's cumulative duration count and sum (seconds).
type KindTotal struct{ Count, Sum float64 }

// kindKey names a request kind from a series of apiserver_request_duration_seconds; the labels that only split one
// kind (component, dry_run, version) are summed over.
func kindKey(m *dto.Metric) string {
	return label(m, "verb") + " " + label(m, "group") + "/" + label(m, "resource") + "/" + label(m, "subresource") + " " + label(m, "scope")
}

// Level returns the level named name, or nil.
func (p *Page) Level(name string) *Level {
	i := sort.Search(len(p.Levels), func(i int) bool { return p.Levels[i].Name >= name })
	if i < len(p.Levels) && p.Levels[i].Name == name {
		return &p.Levels[i]
	}
	return nil
}

// ParsePage reads one page in the format given by contentType (the response's Content-Type; text when empty or
// unknown). It reads at most lim.MaxBodyBytes and refuses larger pages.
func ParsePage(r io.Reader, contentType string, lim Limits) (*Page, error) {
	lr := &limitedReader{r: r, n: lim.MaxBodyBytes}
	format := expfmt.ResponseFormat(headerWith(contentType))
	var dec expfmt.Decoder
	if format.FormatType() == expfmt.TypeProtoDelim {
		dec = expfmt.NewDecoder(lr, format)
	} else {
		// The text decoder parses the whole page into memory: hand it only the lines of the wanted families.
		dec = expfmt.NewDecoder(newFamilyFilter(lr, lim.MaxLineBytes), expfmt.NewFormat(expfmt.TypeTextPlain))
	}
	b := pageBuilder{lim: lim, levels: map[string]*Level{}}
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.exceeded {
				return nil, fmt.Errorf("body over %d bytes: %w", lim.MaxBodyBytes, ErrTooLarge)
			}
			var tl *lineTooLong
			if errors.As(err, &tl) {
				return nil, fmt.Errorf("%w: %w", tl, ErrTooLarge)
			}
			return nil, fmt.Errorf("decode metrics: %w", err)
		}
		if err := b.add(&mf); err != nil {
			return nil, err
		}
	}
	if lr.exceeded {
		return nil, fmt.Errorf("body over %d bytes: %w", lim.MaxBodyBytes, ErrTooLarge)
	}
	return b.page(), nil
}

type pageBuilder struct {
	lim     Limits
	levels  map[string]*Level
	req     histAcc
	kinds   map[string]KindTotal
	series  int
	skipped int
}

func (b *pageBuilder) add(mf *dto.MetricFamily) error {
	name := mf.GetName()
	if !isWanted(name) {
		return nil
	}
	b.series += len(mf.GetMetric())
	if b.series > b.lim.MaxSeries {
		return fmt.Errorf("more than %d flow-control series: %w", b.lim.MaxSeries, ErrTooLarge)
	}
	for _, m := range mf.GetMetric() {
		if !b.labelsOK(m) {
			b.skipped++
			continue
		}
		if name == MetricRequestDuration {
			verb := label(m, "verb")
			if verb == "WATCH" || verb == "CONNECT" {
				continue
			}
			if !b.req.add(m.GetHistogram(), b.lim.MaxBuckets) {
				b.skipped++
				continue
			}
			if h := m.GetHistogram(); finite(h.GetSampleSum()) {
				if b.kinds == nil {
					b.kinds = map[string]KindTotal{}
				}
				k := kindKey(m)
				kt := b.kinds[k]
				kt.Count += float64(h.GetSampleCount())
				kt.Sum += h.GetSampleSum()
				b.kinds[k] = kt
			}
			continue
		}
		pl := label(m, "priority_level")
		if pl == ExemptLevel {
			continue
		}
		lv := b.level(pl)
		if lv == nil {
			b.skipped++
			continue
		}
		switch name {
		case MetricExecutingSeats, MetricNominalSeats, MetricInqueue:
			v := m.GetGauge().GetValue()
			if m.GetGauge() == nil {
				v = m.GetUntyped().GetValue()
			}
			if !finite(v) {
				b.skipped++
				continue
			}
			switch name {
			case MetricExecutingSeats:
				lv.ExecutingSeats += v
				lv.hasExec = true
			case MetricNominalSeats:
				lv.NominalSeats += v
				lv.hasNominal = true
			default:
				lv.Inqueue += v
				lv.hasInqueue = true
			}
		case MetricRejected:
			v := m.GetCounter().GetValue()
			if m.GetCounter() == nil {
				v = m.GetUntyped().GetValue()
			}
			if !finite(v) {
				b.skipped++
				continue
			}
			lv.Rejected += v
		case MetricWaitDuration:
			// execute="false": requests rejected after waiting; their wait is counted with rejections.
			if label(m, "execute") == "false" {
				continue
			}
			acc := histAcc{bounds: lv.Wait.Bounds, counts: lv.Wait.Counts, count: lv.Wait.Count, sum: lv.Wait.Sum}
			if !acc.add(m.GetHistogram(), b.lim.MaxBuckets) {
				b.skipped++
				continue
			}
			lv.Wait = acc.histogram()
			lv.hasWait = true
		}
	}
	return nil
}

func (b *pageBuilder) level(name string) *Level {
	if lv := b.levels[name]; lv != nil {
		return lv
	}
	if name == "" || len(b.levels) >= b.lim.MaxLevels {
		return nil
	}
	lv := &Level{Name: name}
	b.levels[name] = lv
	return lv
}

func (b *pageBuilder) labelsOK(m *dto.Metric) bool {
	for _, l := range m.GetLabel() {
		if len(l.GetValue()) > b.lim.MaxLabelBytes || len(l.GetName()) > b.lim.MaxLabelBytes {
			return false
		}
	}
	return true
}

func (b *pageBuilder) page() *Page {
	p := &Page{Series: b.series, Skipped: b.skipped, RequestDuration: b.req.histogram(), Kinds: b.kinds}
	for _, lv := range b.levels {
		p.Levels = append(p.Levels, *lv)
	}
	sort.Slice(p.Levels, func(i, j int) bool { return p.Levels[i].Name < p.Levels[j].Name })
	return p
}

// histAcc sums histograms bucket by bucket, matching buckets by upper bound.
type histAcc struct {
	bounds, counts []float64
	count, sum     float64
}

// add adds h; false when h is missing or malformed (then nothing is added).
func (a *histAcc) add(h *dto.Histogram, maxBuckets int) bool {
	if h == nil || !finite(h.GetSampleCountFloat()+float64(h.GetSampleCount())) || !finite(h.GetSampleSum()) {
		return false
	}
	bs := h.GetBucket()
	for _, bk := range bs {
		ub := bk.GetUpperBound()
		if math.IsNaN(ub) || !finite(float64(bk.GetCumulativeCount())+bk.GetCumulativeCountFloat()) {
			return false
		}
	}
	for _, bk := range bs {
		ub := bk.GetUpperBound()
		if math.IsInf(ub, +1) {
			continue
		}
		c := float64(bk.GetCumulativeCount()) + bk.GetCumulativeCountFloat()
		i := sort.SearchFloat64s(a.bounds, ub)
		if i == len(a.bounds) || a.bounds[i] != ub {
			if len(a.bounds) >= maxBuckets {
				continue
			}
			a.bounds = append(a.bounds, 0)
			a.counts = append(a.counts, 0)
			copy(a.bounds[i+1:], a.bounds[i:])
			copy(a.counts[i+1:], a.counts[i:])
			a.bounds[i], a.counts[i] = ub, 0
		}
		a.counts[i] += c
	}
	a.count += float64(h.GetSampleCount()) + h.GetSampleCountFloat()
	a.sum += h.GetSampleSum()
	return true
}

func (a *histAcc) histogram() Histogram {
	return Histogram{Bounds: a.bounds, Counts: a.counts, Count: a.count, Sum: a.sum}
}

func isWanted(name string) bool {
	for _, w := range wanted {
		if name == w {
			return true
		}
	}
	return false
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

// limitedReader reads at most n bytes and notes when the source had more.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe for more: a page exactly at the limit is fine.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.exceeded = true
			return 0, ErrTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

type lineTooLong struct{ max int }

func (e *lineTooLong) Error() string { return fmt.Sprintf("metrics line longer than %d bytes", e.max) }

// familyFilter passes on only the text-format lines (samples, HELP and TYPE) of the wanted families. It does not
// parse: expfmt does, on what is left.
type familyFilter struct {
	br      *bufio.Reader
	max     int
	pending []byte
	err     error
}

func newFamilyFilter(r io.Reader, maxLine int) io.Reader {
	return &familyFilter{br: bufio.NewReaderSize(r, 64<<10), max: maxLine}
}

func (f *familyFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		line, err := f.readLine()
		if err != nil {
			f.err = err
		}
		if len(line) > 0 && keepLine(line) {
			f.pending = line
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

func (f *familyFilter) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := f.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > f.max {
			return nil, &lineTooLong{max: f.max}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

// keepLine: a sample line starts with the family name (histograms add _bucket, _sum, _count); HELP and TYPE lines
// name it after the keyword.
func keepLine(line []byte) bool {
	s := line
	if bytes.HasPrefix(s, []byte("# HELP ")) || bytes.HasPrefix(s, []byte("# TYPE ")) {
		s = s[7:]
	} else if len(s) > 0 && s[0] == '#' {
		return false
	}
	for _, w := range wanted {
		if !bytes.HasPrefix(s, []byte(w)) {
			continue
		}
		rest := string(s[len(w):])
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			rest = strings.TrimPrefix(rest, suf)
		}
		if rest == "" || rest[0] == '{' || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r' {
			return true
		}
	}
	return false
}
