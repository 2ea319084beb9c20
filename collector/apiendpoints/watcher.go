package apiendpoints

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/fanoutdev/fanout/collector/kubeclient"
)

// The Service every pod reaches the API server through.
const (
	ServiceNamespace = metav1.NamespaceDefault
	ServiceName      = "kubernetes"
)

// Config of a Watcher.
type Config struct {
	// Client reads Service default/kubernetes and its EndpointSlices; nil runs on the static seed alone.
	Client kubeclient.Client
	// Static endpoints (flags, FromEnv) are delivered first and always stay in the set.
	Static []Endpoint
	// StartJitter delays the informers by a random duration in [0, StartJitter).
	StartJitter time.Duration
	// OnChange receives the full sorted, deduplicated set: once at start, then on every change. Calls are serialized
	// and made from Run's goroutine; the slice is the callee's.
	OnChange func([]Endpoint)
	Logger   *slog.Logger
}

// Watcher keeps the API-server endpoint set current.
type Watcher struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	services map[string][]Endpoint // by namespace/name
	slices   map[string][]Endpoint // by namespace/name
	last     []Endpoint
	synced   []cache.InformerSynced
	dirty    chan struct{}
}

// New validates cfg and returns a Watcher; Run starts it.
func New(cfg Config) (*Watcher, error) {
	if cfg.OnChange == nil {
		return nil, errors.New("apiendpoints: OnChange is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		cfg:      cfg,
		log:      log.With("component", "apiendpoints"),
		services: map[string][]Endpoint{},
		slices:   map[string][]Endpoint{},
		dirty:    make(chan struct{}, 1),
	}, nil
}

// Run delivers the static seed, then (with a client) watches the API until ctx ends. It returns nil on cancellation.
func (w *Watcher) Run(ctx context.Context) error {
	w.publish(true)
	if w.cfg.Client == nil {
		<-ctx.Done()
		return nil
	}
	if w.cfg.StartJitter > 0 {
		d := rand.N(w.cfg.StartJitter)
		w.log.Debug("informer start jitter", "delay", d)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}

	byName := fields.OneTermEqualSelector("metadata.name", ServiceName).String()
	svcInf := kubeclient.NewInformer(w.cfg.Client, w.cfg.Client.CoreV1().Services(ServiceNamespace), &corev1.Service{}, 0,
		func(o *metav1.ListOptions) { o.FieldSelector = byName })
	ofService := labels.Set{discoveryv1.LabelServiceName: ServiceName}.String()
	esInf := kubeclient.NewInformer(w.cfg.Client, w.cfg.Client.DiscoveryV1().EndpointSlices(ServiceNamespace),
		&discoveryv1.EndpointSlice{}, 0, func(o *metav1.ListOptions) { o.LabelSelector = ofService })
	for _, inf := range []cache.SharedIndexInformer{svcInf, esInf} {
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return err
		}
	}
	if _, err := svcInf.AddEventHandler(w.handler(w.services, func(obj any) []Endpoint {
		if s, ok := obj.(*corev1.Service); ok && s.Name == ServiceName {
			return serviceEndpoints(s)
		}
		return nil
	})); err != nil {
		return err
	}
	if _, err := esInf.AddEventHandler(w.handler(w.slices, func(obj any) []Endpoint {
		if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
			return sliceEndpoints(es)
		}
		return nil
	})); err != nil {
		return err
	}
	w.mu.Lock()
	w.synced = []cache.InformerSynced{svcInf.HasSynced, esInf.HasSynced}
	w.mu.Unlock()

	w.log.Info("watching API-server endpoints", "service", ServiceNamespace+"/"+ServiceName)
	var wg sync.WaitGroup
	for _, inf := range []cache.SharedIndexInformer{svcInf, esInf} {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.dirty:
			w.publish(false)
		}
	}
}

// handler records extract(obj) under the object's key in m and marks the set dirty.
func (w *Watcher) handler(m map[string][]Endpoint, extract func(any) []Endpoint) cache.ResourceEventHandler {
	set := func(obj any) {
		key, err := cache.MetaNamespaceKeyFunc(obj)
		if err != nil {
			return
		}
		eps := extract(obj)
		w.mu.Lock()
		m[key] = eps
		w.mu.Unlock()
		w.markDirty()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
			if err != nil {
				return
			}
			w.mu.Lock()
			delete(m, key)
			w.mu.Unlock()
			w.markDirty()
		},
	}
}

func (w *Watcher) markDirty() {
	select {
	case w.dirty <- struct{}{}:
	default:
	}
}

// publish computes the effective set and calls OnChange when it changed (or always when first).
func (w *Watcher) publish(first bool) {
	w.mu.Lock()
	all := slices.Clone(w.cfg.Static)
	for _, eps := range w.services {
		all = append(all, eps...)
	}
	for _, eps := range w.slices {
		all = append(all, eps...)
	}
	set := normalize(all)
	changed := first || !slices.Equal(set, w.last)
	if changed {
		w.last = set
	}
	w.mu.Unlock()
	if !changed {
		return
	}
	w.log.Info("API-server endpoints", "count", len(set), "endpoints", set)
	w.cfg.OnChange(slices.Clone(set))
}

// Endpoints returns the set last delivered to OnChange.
func (w *Watcher) Endpoints() []Endpoint {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.last)
}

// HasSynced reports whether both informers have completed their initial list (false without a client).
func (w *Watcher) HasSynced() bool {
	w.mu.Lock()
	synced := w.synced
	w.mu.Unlock()
	if len(synced) == 0 {
		return false
	}
	for _, s := range synced {
		if !s() {
			return false
		}
	}
	return true
}

func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
