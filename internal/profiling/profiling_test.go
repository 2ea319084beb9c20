package profiling

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

type upload struct {
	name string
	prof *profile.Profile
}

// TestUploadsDecodableProfiles runs the profiler against a local ingest endpoint and checks that what arrives are
// valid pprof profiles with samples, under the configured app name and tags.
func TestUploadsDecodableProfiles(t *testing.T) {
	var (
		mu      sync.Mutex
		uploads []upload
		errs    []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ingest" {
			http.NotFound(w, r)
			return
		}
		f, _, err := r.FormFile("profile")
		if err != nil {
			mu.Lock()
			errs = append(errs, "form: "+err.Error())
			mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer f.Close()
		p, err := profile.Parse(f)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, "parse: "+err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		uploads = append(uploads, upload{name: r.URL.Query().Get("name"), prof: p})
	}))
	defer srv.Close()

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	stop, err := Start(context.Background(), Config{
		ServerURL: srv.URL, AppName: "fanout-test", Tags: map[string]string{"node": "n1"}, UploadEvery: 500 * time.Millisecond,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU so the CPU profile has samples.
	deadline := time.Now().Add(1500 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 1e5; i++ {
			x += i * i
		}
	}
	_ = x
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("bad uploads: %v", errs)
	}
	var cpuSamples int64
	kinds := map[string]bool{}
	for _, u := range uploads {
		app, tags, _ := strings.Cut(u.name, "{")
		if app != "fanout-test" || !strings.Contains(tags, "node=n1") {
			t.Errorf("upload name %q lacks app name or tag", u.name)
		}
		for i, st := range u.prof.SampleType {
			kinds[st.Type] = true
			if st.Type == "cpu" {
				for _, s := range u.prof.Sample {
					cpuSamples += s.Value[i]
				}
			}
		}
	}
	for _, k := range []string{"cpu", "alloc_objects", "inuse_space", "goroutine"} {
		if !kinds[k] {
			t.Errorf("no %s profile uploaded; got sample types %v from %d uploads", k, kinds, len(uploads))
		}
	}
	if cpuSamples == 0 {
		t.Fatalf("cpu profiles carry no samples")
	}
	t.Logf("%d uploads, kinds %v, cpu sample value sum %d", len(uploads), kinds, cpuSamples)
}

func TestDisabledWithoutURL(t *testing.T) {
	stop, err := Start(context.Background(), Config{}, slog.New(slog.DiscardHandler))
	if err != nil || stop() != nil {
		t.Fatalf("disabled profiling must be a no-op, got %v", err)
	}
}
