package apiserverstats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/internal/endpointslice"
)

// The Service in front of the API server replicas, and the label its EndpointSlices carry.
const (
	serviceNamespace = metav1.NamespaceDefault
	serviceSelector  = discoveryv1.LabelServiceName + "=kubernetes"
)

// DiscoveryConfig configures Discovery.
type DiscoveryConfig struct {
	// Client lists the EndpointSlices of Service default/kubernetes (list on discovery.k8s.io endpointslices in
	// namespace default).
	Client kubernetes.Interface
	// Every is the period of the re-list (jittered +-10%, default 60 s): one LIST per period, whatever the fleet size.
	Every time.Duration
	// MaxReplicas bounds the set (default 16); beyond it, the first MaxReplicas URLs in sorted order are kept.
	MaxReplicas int
	// Fallback is scraped when discovery yields no ready replica (e.g. the Service's own address,
	// https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT); replicas may then be mixed behind it. Empty: none.
	Fallback string
	// Set receives the URL set (sorted) whenever it changes; typically Scraper.SetURLs.
	Set func([]string) error
}

// Discovery keeps a scraper's URL set equal to the ready API server replicas behind Service default/kubernetes, read
// from its EndpointSlices. While the API server cannot be listed, the last known set stays.
type Discovery struct {
	cfg      DiscoveryConfig
	log      *slog.Logger
	current  []string
	failures int
	capped   bool
}

// NewDiscovery validates cfg.
func NewDiscovery(cfg DiscoveryConfig, logger *slog.Logger) (*Discovery, error) {
	if cfg.Client == nil || cfg.Set == nil {
		return nil, errors.New("apiserver discovery: Client and Set are required")
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.MaxReplicas <= 0 {
		cfg.MaxReplicas = 16
	}
	return &Discovery{cfg: cfg, log: logger.With("component", "apiserverstats", "source", "endpointslices")}, nil
}

// Run lists at once, then every Every (jittered) until ctx ends.
func (d *Discovery) Run(ctx context.Context) {
	for {
		d.Refresh(ctx)
		t := time.NewTimer(jitter(d.cfg.Every))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Refresh lists the EndpointSlices once and updates the set. It returns the set now in force.
func (d *Discovery) Refresh(ctx context.Context) []string {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// resourceVersion "0": served from the API server's watch cache, never a quorum read from etcd.
	list, err := d.cfg.Client.DiscoveryV1().EndpointSlices(serviceNamespace).List(lctx,
		metav1.ListOptions{LabelSelector: serviceSelector, ResourceVersion: "0"})
	if err != nil {
		if ctx.Err() != nil {
			return d.current // shutting down
		}
		d.failures++
		if d.failures == 1 || d.failures%10 == 0 {
			d.log.Warn("list the API server's EndpointSlices failed; keeping the last known replicas", "err", err,
				"failures", d.failures, "replicas", len(d.current))
		}
		if len(d.current) == 0 {
			d.apply(d.fallback("the EndpointSlices of default/kubernetes cannot be listed"))
		}
		return d.current
	}
	if d.failures > 0 {
		d.log.Info("API server EndpointSlices listed again", "after_failures", d.failures)
		d.failures = 0
	}
	var urls []string
	for i := range list.Items {
		urls = append(urls, SliceURLs(&list.Items[i])...)
	}
	slices.Sort(urls)
	urls = slices.Compact(urls)
	if len(urls) > d.cfg.MaxReplicas {
		if !d.capped {
			d.log.Warn("more API server replicas than scraped; scraping the first in address order", "replicas", len(urls),
				"max", d.cfg.MaxReplicas)
			d.capped = true
		}
		urls = urls[:d.cfg.MaxReplicas]
	}
	if len(urls) == 0 {
		urls = d.fallback("no ready endpoint in the EndpointSlices of default/kubernetes")
	}
	d.apply(urls)
	return d.current
}

// fallback is the Fallback URL (nil when none), logged when it replaces a discovered set.
func (d *Discovery) fallback(why string) []string {
	if d.cfg.Fallback == "" {
		if len(d.current) == 0 {
			d.log.Warn("no API server replica to scrape", "reason", why)
		}
		return d.current
	}
	if !slices.Equal(d.current, []string{d.cfg.Fallback}) {
		d.log.Warn("scraping the API server through its Service address; replicas may be mixed behind the Service",
			"reason", why, "url", d.cfg.Fallback)
	}
	return []string{d.cfg.Fallback}
}

func (d *Discovery) apply(urls []string) {
	if slices.Equal(urls, d.current) || len(urls) == 0 {
		return
	}
	if err := d.cfg.Set(slices.Clone(urls)); err != nil {
		d.log.Warn("API server replica set refused", "err", err, "urls", urls)
		return
	}
	d.log.Info("API server replicas to scrape", "urls", urls)
	d.current = urls
}

// SliceURLs converts an EndpointSlice of the API server into one /metrics URL per ready address
// (https://IP:port/metrics, IPv6 bracketed), as endpointslice.Read reads it (bounded, Ready unset counts as ready).
// The port is the one named "https", else the first TCP port; FQDN slices and slices without a TCP port yield nothing.
func SliceURLs(es *discoveryv1.EndpointSlice) []string {
	s := endpointslice.Read(es)
	port, ok := s.Preferred("https")
	if !ok {
		return nil
	}
	var out []string
	for _, a := range s.Addrs {
		out = append(out, "https://"+netip.AddrPortFrom(a, port).String()+"/metrics")
	}
	return out
}

// ServiceURL is the in-cluster address of the API server's Service (https://host:port/metrics, from
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT as getenv returns them), "" when host is unset.
func ServiceURL(getenv func(string) string) string {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" {
		return ""
	}
	if port == "" {
		port = "443"
	}
	return fmt.Sprintf("https://%s/metrics", net.JoinHostPort(host, port))
}
