package apiserverstats

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
)

// recordPhase describes one recorded pair of /metrics pages (testdata/<name>-{a,b}.prom.gz, taken Gap apart).
type recordPhase struct {
	Name      string  `json:"name"`
	Loops     int     `json:"list_loops"`
	Gap       float64 `json:"gap_s"`
	ListsPerS float64 `json:"lists_per_s"`
	// GetP50Ms and GetP99Ms: a normal user's single-object GET latency during the phase.
	GetP50Ms   float64 `json:"get_p50_ms"`
	GetP99Ms   float64 `json:"get_p99_ms"`
	ListErrors int64   `json:"list_errors"`
}

type recordMeta struct {
	Version  string        `json:"apiserver_version"`
	SeedPods int           `json:"seed_pods"`
	ListMB   float64       `json:"list_bytes_mb"`
	Phases   []recordPhase `json:"phases"`
}

// TestRecordPages records testdata from a real kube-apiserver: /metrics at rest and under concurrent cluster-wide
// LIST loops from normal (non system:masters) users against a few thousand pods. Run with
// FANOUT_RECORD_METRICS=1 go test -run TestRecordPages -v -timeout 30m ./aggregator/apiserverstats/
func TestRecordPages(t *testing.T) {
	if os.Getenv("FANOUT_RECORD_METRICS") != "1" {
		t.Skip("records testdata; set FANOUT_RECORD_METRICS=1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	const loops = 24
	users := []string{"scraper", "prober"}
	for i := range loops {
		users = append(users, fmt.Sprintf("lister-%d", i))
	}
	cp, err := harness.Start(ctx, harness.Config{Users: users, Logger: logger})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	defer cp.Close()
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))
	if err := fleet.GrantRules(ctx, admin, "scrape-metrics", []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}, "scraper"); err != nil {
		t.Fatal(err)
	}
	if err := fleet.GrantClusterRead(ctx, admin, "list-pods", []string{"pods"}, users[1:]...); err != nil {
		t.Fatal(err)
	}
	meta := recordMeta{SeedPods: 3000}
	if err := fleet.Seed(ctx, admin, fleet.SeedConfig{Namespace: "bulk", Pods: meta.SeedPods}); err != nil {
		t.Fatal(err)
	}
	v, err := admin.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	meta.Version = v.GitVersion

	client := func(user string) *http.Client {
		hc, err := rest.HTTPClientFor(cp.RESTConfig(user))
		if err != nil {
			t.Fatal(err)
		}
		hc.Timeout = 60 * time.Second
		return hc
	}
	scraper := client("scraper")
	page := func(name string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.URL+"/metrics", nil)
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		resp, err := scraper.Do(req)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("scrape: status %d", resp.StatusCode)
		}
		f, err := os.Create(filepath.Join("testdata", name+".prom.gz"))
		if err != nil {
			t.Fatal(err)
		}
		zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
		n, err := io.Copy(zw, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Logf("recorded %s: %d bytes, content-type %s", name, n, resp.Header.Get("Content-Type"))
	}
	// One LIST to know its size.
	lc := client("lister-0")
	listURL := cp.URL + "/api/v1/pods"
	{
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, listURL, nil)
		req.Header.Set("Accept", "application/vnd.kubernetes.protobuf")
		resp, err := lc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		meta.ListMB = float64(n) / 1e6
	}
	prober := kubernetes.NewForConfigOrDie(cp.RESTConfig("prober"))
	phase := func(name string, n int, warm, gap time.Duration) {
		pctx, stop := context.WithCancel(ctx)
		var lists, errs atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			hc := client(fmt.Sprintf("lister-%d", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for pctx.Err() == nil {
					req, _ := http.NewRequestWithContext(pctx, http.MethodGet, listURL, nil)
					req.Header.Set("Accept", "application/vnd.kubernetes.protobuf")
					resp, err := hc.Do(req)
					if err != nil {
						if pctx.Err() == nil {
							errs.Add(1)
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						lists.Add(1)
					} else {
						errs.Add(1)
					}
				}
			}()
		}
		var lat []float64
		var mu sync.Mutex
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				t0 := time.Now()
				_, err := prober.CoreV1().Pods("bulk").Get(pctx, "seed-00000", metav1.GetOptions{})
				if err == nil {
					mu.Lock()
					lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
					mu.Unlock()
				}
				select {
				case <-pctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		time.Sleep(warm)
		l0, t0 := lists.Load(), time.Now()
		page(name + "-a")
		time.Sleep(gap)
		page(name + "-b")
		rate := float64(lists.Load()-l0) / time.Since(t0).Seconds()
		stop()
		wg.Wait()
		ph := recordPhase{Name: name, Loops: n, Gap: gap.Seconds(), ListsPerS: rate, ListErrors: errs.Load()}
		sort.Float64s(lat)
		if len(lat) > 0 {
			ph.GetP50Ms, ph.GetP99Ms = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
		}
		t.Logf("phase %+v", ph)
		meta.Phases = append(meta.Phases, ph)
	}
	time.Sleep(10 * time.Second)
	phase("rest", 0, 5*time.Second, 5*time.Second)
	phase("load", 8, 20*time.Second, 5*time.Second)
	phase("overload", loops, 20*time.Second, 5*time.Second)
	time.Sleep(10 * time.Second)
	phase("after", 0, 5*time.Second, 5*time.Second)
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join("testdata", "pages.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
