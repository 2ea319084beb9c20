package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Config bounds the watcher.
type Config struct {
	// MaxObjects caps the workloads and HPAs tracked (each kind counts towards it); beyond it new objects are
	// ignored and counted in Stats.Dropped.
	MaxObjects int
	// Resync is the informers' resync period (0: none; the watch keeps them current).
	Resync time.Duration
}

// DefaultConfig tracks up to 200,000 objects (a few tens of MB at most).
func DefaultConfig() Config { return Config{MaxObjects: 200_000} }

// Stats describe the watcher (for metrics and status).
type Stats struct {
	Workloads, HPAs int
	Dropped         uint64
	Synced          bool
}

type hpaTarget struct {
	workload string
	max      int32
}

// Watcher holds the full placement of every watched workload.
type Watcher struct {
	cfg    Config
	cs     kubernetes.Interface
	logger *slog.Logger

	mu       sync.RWMutex
	replicas map[string]int32     // workload -> desired pods
	hpas     map[string]hpaTarget // HPA namespace/name -> its target and maxReplicas
	hpaMax   map[string]int32     // workload -> largest maxReplicas of the HPAs targeting it
	dropped  atomic.Uint64
	synced   atomic.Bool
}

// New returns a watcher over cs; Run starts it.
func New(cs kubernetes.Interface, cfg Config, logger *slog.Logger) *Watcher {
	if cfg.MaxObjects <= 0 {
		cfg.MaxObjects = DefaultConfig().MaxObjects
	}
	return &Watcher{cfg: cfg, cs: cs, logger: logger.With("component", "placement"),
		replicas: map[string]int32{}, hpas: map[string]hpaTarget{}, hpaMax: map[string]int32{}}
}

// FullPlacement returns the pods workload (Kind/namespace/name) has at full placement: an HPA's maxReplicas if one
// targets it, else its desired replicas (DaemonSet: desiredNumberScheduled). ok is false for a workload not (yet)
// known. The values survive API server outages: the informers keep their cache and resume their watch.
func (w *Watcher) FullPlacement(workload string) (uint32, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if m, ok := w.hpaMax[workload]; ok {
		return uint32(max(m, 0)), true
	}
	n, ok := w.replicas[workload]
	return uint32(max(n, 0)), ok
}

// Stats returns the watcher's size and state.
func (w *Watcher) Stats() Stats {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return Stats{Workloads: len(w.replicas), HPAs: len(w.hpas), Dropped: w.dropped.Load(), Synced: w.synced.Load()}
}

// Synced reports whether every informer finished its first list.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Run watches until ctx ends: one informer (one list + one watch) per kind. It returns once ctx is done; an error
// only when the informers could not be set up.
func (w *Watcher) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactoryWithOptions(w.cs, w.cfg.Resync, informers.WithTransform(trim))
	infs := []cache.SharedIndexInformer{
		f.Apps().V1().DaemonSets().Informer(),
		f.Apps().V1().Deployments().Informer(),
		f.Apps().V1().ReplicaSets().Informer(),
		f.Apps().V1().StatefulSets().Informer(),
		f.Autoscaling().V2().HorizontalPodAutoscalers().Informer(),
	}
	var syncs []cache.InformerSynced
	for _, inf := range infs {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { w.apply(o, false) },
			UpdateFunc: func(_, o any) { w.apply(o, false) },
			DeleteFunc: func(o any) { w.apply(o, true) },
		}); err != nil {
			return fmt.Errorf("placement handler: %w", err)
		}
		syncs = append(syncs, inf.HasSynced)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	start := time.Now()
	if cache.WaitForCacheSync(ctx.Done(), syncs...) {
		w.synced.Store(true)
		st := w.Stats()
		w.logger.Info("placement synced", "workloads", st.Workloads, "hpas", st.HPAs, "took", time.Since(start).Round(time.Millisecond))
	}
	<-ctx.Done()
	return nil
}

// trim keeps only what placement needs of each object, so the informers' caches stay small.
func trim(o any) (any, error) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		return t, nil
	}
	meta := func(m metav1.ObjectMeta) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
	}
	switch v := o.(type) {
	case *appsv1.DaemonSet:
		return &appsv1.DaemonSet{ObjectMeta: meta(v.ObjectMeta), Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: v.Status.DesiredNumberScheduled}}, nil
	case *appsv1.Deployment:
		return &appsv1.Deployment{ObjectMeta: meta(v.ObjectMeta), Spec: appsv1.DeploymentSpec{Replicas: v.Spec.Replicas}}, nil
	case *appsv1.StatefulSet:
		return &appsv1.StatefulSet{ObjectMeta: meta(v.ObjectMeta), Spec: appsv1.StatefulSetSpec{Replicas: v.Spec.Replicas}}, nil
	case *appsv1.ReplicaSet:
		m := meta(v.ObjectMeta)
		if c := metav1.GetControllerOfNoCopy(v); c != nil {
			m.OwnerReferences = []metav1.OwnerReference{{Kind: c.Kind, Name: c.Name, APIVersion: c.APIVersion, UID: c.UID, Controller: c.Controller}}
		}
		return &appsv1.ReplicaSet{ObjectMeta: m, Spec: appsv1.ReplicaSetSpec{Replicas: v.Spec.Replicas}}, nil
	case *autoscalingv2.HorizontalPodAutoscaler:
		return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta(v.ObjectMeta), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: v.Spec.ScaleTargetRef.Kind, Name: v.Spec.ScaleTargetRef.Name},
			MaxReplicas:    v.Spec.MaxReplicas}}, nil
	}
	return o, nil
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1 // the API server's default
	}
	return *p
}

// apply records one object (or its deletion).
func (w *Watcher) apply(o any, deleted bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o, deleted = t.Obj, true
	}
	var name string
	var n int32
	switch v := o.(type) {
	case *appsv1.DaemonSet:
		name, n = "DaemonSet/"+v.Namespace+"/"+v.Name, v.Status.DesiredNumberScheduled
	case *appsv1.Deployment:
		name, n = "Deployment/"+v.Namespace+"/"+v.Name, replicas(v.Spec.Replicas)
	case *appsv1.StatefulSet:
		name, n = "StatefulSet/"+v.Namespace+"/"+v.Name, replicas(v.Spec.Replicas)
	case *appsv1.ReplicaSet:
		// A Deployment's ReplicaSets are its revisions: the Deployment's replicas are the placement.
		if c := metav1.GetControllerOfNoCopy(v); c != nil && c.Kind == "Deployment" {
			return
		}
		name, n = "ReplicaSet/"+v.Namespace+"/"+v.Name, replicas(v.Spec.Replicas)
	case *autoscalingv2.HorizontalPodAutoscaler:
		w.applyHPA(v, deleted)
		return
	default:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if deleted {
		delete(w.replicas, name)
		return
	}
	if _, ok := w.replicas[name]; !ok && w.size() >= w.cfg.MaxObjects {
		w.dropped.Add(1)
		return
	}
	w.replicas[name] = n
}

func (w *Watcher) size() int { return len(w.replicas) + len(w.hpas) }

func (w *Watcher) applyHPA(h *autoscalingv2.HorizontalPodAutoscaler, deleted bool) {
	key := h.Namespace + "/" + h.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	old, had := w.hpas[key]
	if deleted {
		delete(w.hpas, key)
	} else {
		if !had && w.size() >= w.cfg.MaxObjects {
			w.dropped.Add(1)
			return
		}
		ref := h.Spec.ScaleTargetRef
		w.hpas[key] = hpaTarget{workload: ref.Kind + "/" + h.Namespace + "/" + ref.Name, max: h.Spec.MaxReplicas}
	}
	// Recompute the largest maxReplicas of the targets touched (a few HPAs per namespace at most).
	for _, wl := range []string{old.workload, w.hpas[key].workload} {
		if wl == "" || (had && wl == old.workload && !deleted && wl == w.hpas[key].workload && false) {
			continue
		}
		w.recomputeHPA(wl)
	}
}

func (w *Watcher) recomputeHPA(workload string) {
	m, found := int32(0), false
	for _, t := range w.hpas {
		if t.workload == workload {
			m, found = max(m, t.max), true
		}
	}
	if found {
		w.hpaMax[workload] = m
	} else {
		delete(w.hpaMax, workload)
	}
}

// ErrNotSynced is returned by WaitSynced when ctx ends first.
var ErrNotSynced = errors.New("placement not synced")

// WaitSynced blocks until the first list of every kind is in or ctx ends.
func (w *Watcher) WaitSynced(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !w.synced.Load() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotSynced, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
