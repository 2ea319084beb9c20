package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SeedConfig describes a dataset that makes cluster-wide LISTs expensive.
type SeedConfig struct {
	Namespace string
	// Pods and ConfigMaps are how many objects of each to create.
	Pods, ConfigMaps int
	// ConfigMapBytes is the payload size of each ConfigMap (default 2 KiB).
	ConfigMapBytes int
	// Concurrency of the creating workers (default 16).
	Concurrency int
}

// Seed creates the dataset with the admin client. Seeded pods are bound to nodes outside the simulated fleet
// ("seed-node-<i%50>") so no agent's node-scoped informer sees them. DESIGN.md: 2000 pods make a 5.5 MB LIST, and 8
// concurrent cluster-wide LIST loops saturate a 2-core API server.
func Seed(ctx context.Context, cs kubernetes.Interface, cfg SeedConfig) error {
	if cfg.Namespace == "" {
		return errors.New("seed needs a namespace")
	}
	if cfg.Pods < 0 || cfg.ConfigMaps < 0 || cfg.Pods+cfg.ConfigMaps > 100000 {
		return fmt.Errorf("seed sizes out of range: %d pods, %d configmaps", cfg.Pods, cfg.ConfigMaps)
	}
	if cfg.ConfigMapBytes <= 0 {
		cfg.ConfigMapBytes = 2048
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if err := EnsureNamespace(ctx, cs, cfg.Namespace); err != nil {
		return err
	}
	payload := strings.Repeat("x", cfg.ConfigMapBytes)
	total := cfg.Pods + cfg.ConfigMaps
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				var err error
				if i < cfg.Pods {
					_, err = cs.CoreV1().Pods(cfg.Namespace).Create(ctx, seedPod(cfg.Namespace, i), metav1.CreateOptions{})
				} else {
					j := i - cfg.Pods
					_, err = cs.CoreV1().ConfigMaps(cfg.Namespace).Create(ctx, &corev1.ConfigMap{
						ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("seed-%05d", j), Namespace: cfg.Namespace,
							Labels: map[string]string{"fanout.dev/seed": "true"}},
						Data: map[string]string{"payload": payload},
					}, metav1.CreateOptions{})
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("seed object %d: %w", i, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// seedPod is a realistic-sized pod (a few containers with env, labels, annotations) like the ones in a busy cluster.
func seedPod(ns string, i int) *corev1.Pod {
	var containers []corev1.Container
	for c := range 2 {
		var env []corev1.EnvVar
		for e := range 8 {
			env = append(env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", e), Value: fmt.Sprintf("value-%d-%d-%d", i, c, e)})
		}
		containers = append(containers, corev1.Container{
			Name: fmt.Sprintf("c%d", c), Image: "registry.example/team/service:1.2.3", Env: env,
			Args: []string{"--log-level=info", fmt.Sprintf("--listen=:%d", 8080+c), fmt.Sprintf("--metrics=:%d", 9090+c)},
			Ports: []corev1.ContainerPort{
				{Name: fmt.Sprintf("http-%d", c), ContainerPort: int32(8080 + c)},
				{Name: fmt.Sprintf("metrics-%d", c), ContainerPort: int32(9090 + c)},
			},
		})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("seed-%05d", i), Namespace: ns,
			Labels:      map[string]string{"fanout.dev/seed": "true", "app": fmt.Sprintf("svc-%d", i%40), "tier": "backend"},
			Annotations: map[string]string{"fanout.dev/note": strings.Repeat("n", 256)},
		},
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("seed-node-%d", i%50), Containers: containers},
	}
}
