package kubeclient

import (
	"fmt"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client is the part of the API the agent uses. A kubernetes.Interface (client-go's clientset, or its fake in tests)
// satisfies it.
type Client interface {
	CoreV1() corev1client.CoreV1Interface
	DiscoveryV1() discoveryv1client.DiscoveryV1Interface
}

type client struct {
	core      *corev1client.CoreV1Client
	discovery *discoveryv1client.DiscoveryV1Client
}

func (c *client) CoreV1() corev1client.CoreV1Interface { return c.core }

func (c *client) DiscoveryV1() discoveryv1client.DiscoveryV1Interface { return c.discovery }

// The agent is a polite client: a node-scoped watch or two and a GET at start, whatever the fleet's size.
const (
	qps   = 5
	burst = 10
)

// New builds a client from a kubeconfig file, or from the in-cluster service account when kubeconfig is empty.
// userAgent identifies the agent in the API server's audit log and flow control.
func New(kubeconfig, userAgent string) (Client, error) {
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
	cfg.QPS, cfg.Burst = qps, burst
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create core/v1 client: %w", err)
	}
	disc, err := discoveryv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create discovery/v1 client: %w", err)
	}
	return &client{core: core, discovery: disc}, nil
}
