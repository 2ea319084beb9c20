package identity

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NewClient builds an API client from a kubeconfig file, or from the in-cluster service account when kubeconfig is
// empty. userAgent identifies the agent in API server audit logs and APF.
func NewClient(kubeconfig, userAgent string) (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("load API client config: %w", err)
	}
	cfg.UserAgent = userAgent
	// The agent is a polite client: one node-scoped watch, low QPS.
	cfg.QPS, cfg.Burst = 5, 10
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create API client: %w", err)
	}
	return c, nil
}
