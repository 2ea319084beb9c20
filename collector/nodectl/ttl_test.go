package nodectl

import (
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
)

// An unblock's exemption lasts --ttl when given, else what remained of the block (its entry, else its workload's
// directive record), else defaultExemptTTL; an expired or endless block falls through to the next source.
func TestExemptTTL(t *testing.T) {
	now := uint64(time.Hour)
	in := func(d time.Duration) uint64 { return now + uint64(d) }
	live := blockmap.Entry{ExpiresBootNs: in(7 * time.Minute)}
	expired := blockmap.Entry{ExpiresBootNs: now - 1}
	endless := blockmap.Entry{}
	rec := blockmap.WorkloadRecord{ExpiresBootNs: in(3 * time.Minute)}
	for name, c := range map[string]struct {
		flag     time.Duration
		en       blockmap.Entry
		hasEntry bool
		rec      blockmap.WorkloadRecord
		hasRec   bool
		want     time.Duration
	}{
		"flag wins":                {flag: 2 * time.Hour, en: live, hasEntry: true, want: 2 * time.Hour},
		"remaining of the entry":   {en: live, hasEntry: true, rec: rec, hasRec: true, want: 7 * time.Minute},
		"expired entry, record":    {en: expired, hasEntry: true, rec: rec, hasRec: true, want: 3 * time.Minute},
		"endless entry, record":    {en: endless, hasEntry: true, rec: rec, hasRec: true, want: 3 * time.Minute},
		"endless entry, no record": {en: endless, hasEntry: true, want: defaultExemptTTL},
		"no entry":                 {want: defaultExemptTTL},
		"expired record":           {rec: blockmap.WorkloadRecord{ExpiresBootNs: now}, hasRec: true, want: defaultExemptTTL},
	} {
		if got := exemptTTL(c.flag, c.en, c.hasEntry, c.rec, c.hasRec, now); got != c.want {
			t.Errorf("%s: exemptTTL = %s, want %s", name, got, c.want)
		}
	}
}

func TestRowState(t *testing.T) {
	for r, want := range map[Row]string{{Active: true}: "blocked", {}: "expired", {Exempt: true}: "exempt"} {
		if got := r.State(); got != want {
			t.Errorf("%+v: State = %s, want %s", r, got, want)
		}
	}
	if expiresIn(-1) != "never" || expiresIn(0) != "expired" || expiresIn(1500*time.Millisecond) != "2s" {
		t.Error("expiresIn")
	}
}
