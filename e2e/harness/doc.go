// Package harness runs a real control plane for fanout's end-to-end tests and demo: etcd and kube-apiserver built
// from the Go module proxy in their own throw-away modules (never in fanout's go.mod), cached by version, started on
// free loopback ports with token authentication and RBAC, and stopped by PID.
package harness
