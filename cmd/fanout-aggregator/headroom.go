package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fanoutdev/fanout/aggregator/apiserverstats"
	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/placement"
)

// HeadroomConfig says where the aggregator reads the API server's flow-control telemetry and workload placement.
type HeadroomConfig struct {
	APIServerURLs      urlList
	TokenFile          string
	CAFile             string
	InsecureSkipVerify bool
	PrometheusURL      string
	PrometheusSelector string
	PrometheusWindow   time.Duration
	Interval           time.Duration
	StateFile          string
	SaveEvery          time.Duration
	PlacementWatch     bool
}

// urlList is a repeatable, comma-separated flag.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }

func (l *urlList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func (c *HeadroomConfig) registerFlags(fs *flag.FlagSet) {
	fs.Var(&c.APIServerURLs, "headroom.apiserver-url", "kube-apiserver replica to scrape /metrics from (repeatable or comma-separated; e.g. https://10.0.0.1:6443), or "+
		inCluster+": every ready replica in the EndpointSlices of Service default/kubernetes, re-listed every minute through the --kubeconfig (else in-cluster) client and its credentials")
	fs.StringVar(&c.TokenFile, "headroom.token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "bearer token for the API server's /metrics (re-read when it changes)")
	fs.StringVar(&c.CAFile, "headroom.ca-file", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "CA that signs the API server's certificate")
	fs.BoolVar(&c.InsecureSkipVerify, "headroom.insecure-skip-verify", false, "do not verify the API server's certificate (tests only)")
	fs.StringVar(&c.PrometheusURL, "headroom.prometheus-url", "", "read the API server's flow-control series from this Prometheus instead of scraping it")
	fs.StringVar(&c.PrometheusSelector, "headroom.prometheus-selector", `job="apiserver"`, "label matchers selecting the API servers' series in Prometheus")
	fs.DurationVar(&c.PrometheusWindow, "headroom.prometheus-window", time.Minute, "range of increase() over counters and histograms in Prometheus")
	fs.DurationVar(&c.Interval, "headroom.interval", 5*time.Second, "how often each API server replica (or Prometheus) is read")
	fs.StringVar(&c.StateFile, "headroom.state-file", "", "persist the learned headroom here across restarts (empty: not persisted)")
	fs.DurationVar(&c.SaveEvery, "headroom.save-interval", time.Minute, "how often the learned headroom is written to --headroom.state-file")
	fs.BoolVar(&c.PlacementWatch, "placement.watch", false, "watch DaemonSets, Deployments, ReplicaSets, StatefulSets and HPAs (--kubeconfig, else in-cluster) for the projection's full placement")
}

// inCluster as --headroom.apiserver-url discovers the replicas.
const inCluster = "in-cluster"

func (c *HeadroomConfig) discover() bool { return slices.Contains(c.APIServerURLs, inCluster) }

func (c *HeadroomConfig) validate() error {
	if c.discover() && len(c.APIServerURLs) > 1 {
		return fmt.Errorf("--headroom.apiserver-url=%s discovers the replicas: give it alone, not with URLs", inCluster)
	}
	if len(c.APIServerURLs) > 0 && c.PrometheusURL != "" {
		return errors.New("--headroom.apiserver-url and --headroom.prometheus-url exclude each other")
	}
	if c.Interval < time.Second {
		return fmt.Errorf("--headroom.interval %s: at least 1s", c.Interval)
	}
	return nil
}

// statusSource is a scraper or a Prometheus source.
type statusSource interface {
	Run(ctx context.Context, sink func(apiserverstats.Reading))
	Status() []apiserverstats.ReplicaStatus
}

// newHeadroomSource builds the configured telemetry source (nil when none is configured).
func newHeadroomSource(c HeadroomConfig, kubeconfig string, logger *slog.Logger) (statusSource, error) {
	switch {
	case c.discover():
		return newDiscoveredSource(c, kubeconfig, logger)
	case len(c.APIServerURLs) > 0:
		if c.InsecureSkipVerify {
			c.CAFile = ""
		}
		s, err := apiserverstats.NewScraper(apiserverstats.ScrapeConfig{URLs: c.APIServerURLs, TokenFile: c.TokenFile, CAFile: c.CAFile,
			InsecureSkipVerify: c.InsecureSkipVerify, Interval: c.Interval}, logger)
		if err != nil {
			return nil, fmt.Errorf("headroom scraper: %w", err)
		}
		return s, nil
	case c.PrometheusURL != "":
		p, err := apiserverstats.NewPromSource(apiserverstats.PrometheusConfig{URL: c.PrometheusURL, Selector: c.PrometheusSelector,
			Interval: c.Interval, Window: c.PrometheusWindow}, logger)
		if err != nil {
			return nil, fmt.Errorf("headroom prometheus: %w", err)
		}
		return p, nil
	}
	return nil, nil
}

// discoveredSource scrapes the replicas its Discovery finds.
type discoveredSource struct {
	*apiserverstats.Scraper
	disc *apiserverstats.Discovery
}

// maxDiscoveredReplicas bounds the discovered set (a control plane has a handful of replicas).
const maxDiscoveredReplicas = 16

// newDiscoveredSource builds the scraper and its EndpointSlice discovery on the client-go config of --kubeconfig (else
// in-cluster): the scrapes carry that config's credentials and CA (--headroom.token-file and --headroom.ca-file are for
// explicit URLs), so it works in a pod (service account) and from a workstation alike.
func newDiscoveredSource(c HeadroomConfig, kubeconfig string, logger *slog.Logger) (*discoveredSource, error) {
	rc, err := kubeRESTConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("headroom discovery: kubernetes client config: %w", err)
	}
	if c.InsecureSkipVerify {
		rc.Insecure, rc.CAFile, rc.CAData = true, "", nil
	}
	rc.UserAgent = "fanout-aggregator/headroom"
	rt, err := rest.TransportFor(rc)
	if err != nil {
		return nil, fmt.Errorf("headroom discovery: transport: %w", err)
	}
	sc, err := apiserverstats.NewScraper(apiserverstats.ScrapeConfig{Transport: rt, Interval: c.Interval, MaxReplicas: maxDiscoveredReplicas}, logger)
	if err != nil {
		return nil, fmt.Errorf("headroom scraper: %w", err)
	}
	lc := rest.CopyConfig(rc)
	lc.ContentType = "application/vnd.kubernetes.protobuf"
	lc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(lc)
	if err != nil {
		return nil, fmt.Errorf("headroom discovery: kubernetes client: %w", err)
	}
	// Without replicas in the EndpointSlices: the Service's address in a pod, else the kubeconfig's server.
	fallback := apiserverstats.ServiceURL(os.Getenv)
	if fallback == "" && rc.Host != "" {
		if u, err := url.Parse(rc.Host); err == nil && u.Host != "" {
			u.Path = "/metrics"
			fallback = u.String()
		}
	}
	disc, err := apiserverstats.NewDiscovery(apiserverstats.DiscoveryConfig{Client: cs, MaxReplicas: maxDiscoveredReplicas,
		Fallback: fallback, Set: sc.SetURLs}, logger)
	if err != nil {
		return nil, err
	}
	return &discoveredSource{Scraper: sc, disc: disc}, nil
}

// Run discovers and scrapes until ctx ends.
func (d *discoveredSource) Run(ctx context.Context, sink func(apiserverstats.Reading)) {
	done := make(chan struct{})
	go func() { defer close(done); d.disc.Run(ctx) }()
	d.Scraper.Run(ctx, sink)
	<-done
}

// runHeadroom feeds every reading to the engine's estimator and persists its state until ctx ends.
func runHeadroom(ctx context.Context, c HeadroomConfig, src statusSource, eng *engine.Engine, logger *slog.Logger) {
	log := logger.With("component", "headroom")
	if c.StateFile != "" {
		ok, err := eng.RestoreHeadroom(c.StateFile, time.Now())
		switch {
		case err != nil:
			log.Warn("headroom state not restored; starting cold", "file", c.StateFile, "err", err)
		case ok:
			log.Info("headroom state restored", "file", c.StateFile, "estimate", estString(eng))
		}
	}
	done := make(chan struct{})
	if src != nil {
		go func() {
			defer close(done)
			rejected := 0
			src.Run(ctx, func(r apiserverstats.Reading) {
				if err := eng.ObserveAPIServer(r.Sample()); err != nil {
					rejected++
					if rejected == 1 || rejected%100 == 0 {
						log.Warn("api server sample rejected", "replica", r.Replica, "err", err, "rejected", rejected)
					}
				}
			})
		}()
	} else {
		close(done)
	}
	if c.StateFile == "" {
		<-done
		return
	}
	t := time.NewTicker(c.SaveEvery)
	defer t.Stop()
	save := func() {
		if err := eng.SaveHeadroom(c.StateFile, time.Now()); err != nil {
			log.Warn("save headroom state", "file", c.StateFile, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			save()
			<-done
			return
		case <-t.C:
			save()
		}
	}
}

func estString(eng *engine.Engine) string {
	e := eng.Headroom()
	return e.String()
}

// startPlacement starts the placement watcher and hands it to the detector.
func startPlacement(ctx context.Context, kubeconfig string, eng *engine.Engine, logger *slog.Logger) (*placement.Watcher, error) {
	rc, err := kubeRESTConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("placement: kubernetes client config: %w", err)
	}
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.UserAgent = "fanout-aggregator/placement"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("placement: kubernetes client: %w", err)
	}
	w := placement.New(cs, placement.DefaultConfig(), logger)
	eng.SetPlacement(w)
	go func() {
		if err := w.Run(ctx); err != nil {
			logger.Error("placement watcher stopped", "err", err)
		}
	}()
	return w, nil
}
