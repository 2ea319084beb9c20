package identity

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/fanoutdev/fanout/collector/kubeclient"
)

// Config configures a Store.
type Config struct {
	// NodeName scopes the pod informer (spec.nodeName=<NodeName>). Required with Client.
	NodeName string
	// Client is the API client; nil runs on the pod-logs fallback only.
	Client kubeclient.Client
	// PodLogsDir is the kubelet's pod log dir for the fallback ("" = /var/log/pods).
	PodLogsDir string
	// StartJitter delays the informer start by a random duration in [0, StartJitter), so a DaemonSet rollout does
	// not LIST all at once.
	StartJitter time.Duration
	// Resync is the informer resync period (0 = none).
	Resync time.Duration
	// MinRescan bounds how often a miss rescans the pod log dir (0 = 5 s).
	MinRescan time.Duration
}

// Store answers PodByUID from the informer cache, falling back to the pod log dir.
type Store struct {
	cfg Config
	log *slog.Logger

	mu       sync.RWMutex
	byUID    map[string]PodIdentity // from the informer
	logs     map[string]PodIdentity // from /var/log/pods
	lastScan time.Time
	subs     map[int]func(PodIdentity)
	nextSub  int
	synced   func() bool
}

// New returns a Store. Call Run to start the informer.
func New(cfg Config, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PodLogsDir == "" {
		cfg.PodLogsDir = DefaultPodLogsDir
	}
	if cfg.MinRescan == 0 {
		cfg.MinRescan = 5 * time.Second
	}
	return &Store{cfg: cfg, log: logger.With("component", "identity"), byUID: map[string]PodIdentity{},
		logs: map[string]PodIdentity{}, subs: map[int]func(PodIdentity){}}
}

// PodByUID returns the identity of a pod on this node.
func (s *Store) PodByUID(uid string) (PodIdentity, bool) {
	s.mu.RLock()
	id, ok := s.byUID[uid]
	if !ok {
		id, ok = s.logs[uid]
	}
	stale := time.Since(s.lastScan) >= s.cfg.MinRescan
	s.mu.RUnlock()
	if ok || !stale {
		return id, ok
	}
	s.rescanLogs()
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok = s.logs[uid]
	return id, ok
}

func (s *Store) rescanLogs() {
	m, err := scanPodLogs(s.cfg.PodLogsDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastScan = time.Now()
	if err != nil {
		s.log.Debug("pod log fallback unavailable", "err", err)
		return
	}
	s.logs = m
}

// OnPodAdd subscribes fn to pods appearing in the informer (including those listed at start). fn runs on the
// informer's goroutine and must not block. The returned function unsubscribes.
func (s *Store) OnPodAdd(fn func(PodIdentity)) (unsubscribe func()) {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

// HasSynced reports whether the informer has completed its initial list.
func (s *Store) HasSynced() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.synced != nil && s.synced()
}

// Run starts the node-scoped pod informer after the start jitter and blocks until ctx ends. Without a client it
// only waits (the pod-log fallback answers lookups).
func (s *Store) Run(ctx context.Context) error {
	if s.cfg.Client == nil {
		<-ctx.Done()
		return nil
	}
	if s.cfg.NodeName == "" {
		return errors.New("identity: node name is required with an API client")
	}
	if s.cfg.StartJitter > 0 {
		d := rand.N(s.cfg.StartJitter)
		s.log.Debug("informer start jitter", "delay", d)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
	// One node-scoped pod informer built on the typed client (not client-go's informer factory, which links every API
	// group).
	onNode := fields.OneTermEqualSelector("spec.nodeName", s.cfg.NodeName).String()
	inf := kubeclient.NewInformer(s.cfg.Client, s.cfg.Client.CoreV1().Pods(metav1.NamespaceAll), &corev1.Pod{}, s.cfg.Resync,
		func(o *metav1.ListOptions) { o.FieldSelector = onNode })
	// Keep only what identity needs: the cache then costs a few hundred bytes per pod.
	if err := inf.SetTransform(stripPod); err != nil {
		return err
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.upsert(obj, true) },
		UpdateFunc: func(_, obj any) { s.upsert(obj, false) },
		DeleteFunc: s.remove,
	}); err != nil {
		return err
	}
	s.mu.Lock()
	s.synced = inf.HasSynced
	s.mu.Unlock()
	s.log.Info("starting pod informer", "node", s.cfg.NodeName)
	inf.RunWithContext(ctx) // until ctx ends
	return nil
}

func stripPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			Labels:          map[string]string{"pod-template-hash": pod.Labels["pod-template-hash"]},
			OwnerReferences: pod.OwnerReferences,
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName},
	}, nil
}

func (s *Store) upsert(obj any, added bool) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	id := PodIdentity{UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name, Workload: Workload(pod),
		Source: SourceAPIServer}
	s.mu.Lock()
	s.byUID[id.UID] = id
	var subs []func(PodIdentity)
	if added {
		for _, fn := range s.subs {
			subs = append(subs, fn)
		}
	}
	s.mu.Unlock()
	for _, fn := range subs {
		fn(id)
	}
}

func (s *Store) remove(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	// Keep the identity for a grace period: the last second of a deleted pod's traffic is still reported.
	uid := string(pod.UID)
	time.AfterFunc(time.Minute, func() {
		s.mu.Lock()
		delete(s.byUID, uid)
		s.mu.Unlock()
	})
}
