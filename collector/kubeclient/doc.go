// Package kubeclient is the node agent's Kubernetes API client: the two API groups it reads (core/v1 for its node's
// pods and its node, discovery/v1 for the API server's EndpointSlices), built from a kubeconfig or the in-cluster
// service account, rate-limited as a polite per-node client. Building only these typed clients, instead of the full
// clientset and its informer factory, keeps every other API group's code out of the agent's binary (its resident
// memory on every node).
package kubeclient
