package ingest

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// A node's successive and concurrent streams share its limiter: reconnecting within the minute admits no new name
// beyond MaxNewNamesPerMinute, and names admitted on one stream are known on the next.
func TestLimitersReconnectKeepsBudget(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	ls := NewLimiters(c.now)
	other := ls.Open("n1") // a concurrent stream of the same node, open throughout
	admitted := 0
	for i := range 10 {
		lim := ls.Open("n1")
		if lim != other {
			t.Fatalf("reconnect %d: a new limiter for a node with an open stream", i)
		}
		admitted += MaxNewNamesPerReport - lim.Apply(namesReport(t, 1000+int64(i), fmt.Sprintf("r%d", i), MaxNewNamesPerReport))
		ls.Close(lim)
		c.t = c.t.Add(5 * time.Second)
	}
	if admitted != MaxNewNamesPerMinute {
		t.Fatalf("10 reconnects within the minute admitted %d new names, want %d", admitted, MaxNewNamesPerMinute)
	}
	ls.Close(other)
	// With no stream open, the limiter outlives its minute's budget: reconnecting at once still gains nothing.
	c.t = time.Unix(1000+45, 0)
	lim := ls.Open("n1")
	if folded := lim.Apply(namesReport(t, 2000, "late", 10)); folded != 10 {
		t.Fatalf("reconnect with no stream open admitted %d names after the budget was spent", 10-folded)
	}
	// The names admitted earlier are still known: not new, not folded.
	if folded := lim.Apply(namesReport(t, 2001, "r0", MaxNewNamesPerReport)); folded != 0 {
		t.Fatalf("%d known names folded after a reconnect", folded)
	}
	ls.Close(lim)
}

// The registry holds the nodes with an open stream plus those whose minute has not passed: nodes that connect once
// and go away are forgotten, while a node with an open stream keeps its limiter however long it stays.
func TestLimitersBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	ls := NewLimiters(c.now)
	steady := ls.Open("steady")
	steady.Apply(namesReport(t, 1000, "steady", 10))
	const perSecond = 50
	maxLen := 0
	for s := range 600 { // ten minutes, 50 new nodes a second, each sending one report and leaving
		for i := range perSecond {
			lim := ls.Open(fmt.Sprintf("n-%d-%d", s, i))
			lim.Apply(namesReport(t, 1000+int64(s), "x", 1))
			ls.Close(lim)
		}
		maxLen = max(maxLen, ls.Len())
		c.t = c.t.Add(time.Second)
	}
	// Within its minute a node is held; the sweep runs once a second: at most ~61 seconds' worth of nodes.
	if bound := 62*perSecond + 1; maxLen > bound {
		t.Fatalf("registry held %d limiters, bound %d", maxLen, bound)
	}
	c.t = c.t.Add(2 * time.Minute)
	if lim := ls.Open("steady"); lim != steady {
		t.Fatal("the limiter of a node with an open stream was forgotten")
	} else {
		ls.Close(lim)
	}
	if n := ls.Len(); n != 1 {
		t.Fatalf("%d limiters held after every other node left minutes ago, want 1", n)
	}
	ls.Close(steady)
	if n := ls.Len(); n != 0 {
		t.Fatalf("%d limiters held with no stream open and every minute passed, want 0", n)
	}
}

// Streams of one node apply its limiter concurrently (run with -race): together they admit one minute's budget.
func TestLimiterConcurrentStreams(t *testing.T) {
	ls := NewLimiters(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted int
	)
	for g := range 8 {
		r := namesReport(t, 1000+int64(g), fmt.Sprintf("g%d", g), MaxNewNamesPerReport)
		wg.Go(func() {
			lim := ls.Open("n1")
			defer ls.Close(lim)
			n := MaxNewNamesPerReport - lim.Apply(r)
			mu.Lock()
			admitted += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if admitted != MaxNewNamesPerMinute {
		t.Fatalf("8 concurrent streams admitted %d new names, want %d", admitted, MaxNewNamesPerMinute)
	}
}
