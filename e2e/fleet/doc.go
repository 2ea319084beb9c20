// Package fleet simulates a fleet of Kubernetes nodes on one machine for fanout's end-to-end tests and demo: per node
// a cgroup subtree laid out like a kubelet's (cgroupfs driver: <root>/node-N/kubepods/besteffort/pod<UID>/<container>),
// real Pod objects in a real API server (nodeName set, owner references to real DaemonSets and Deployments) whose UIDs
// name those cgroups, and pod processes that are real client-go programs (e2e/cmd/podload) born inside the container
// cgroups. It also seeds datasets that make LISTs expensive. Every process it starts is stopped by PID on Close.
package fleet
