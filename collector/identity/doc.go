// Package identity resolves pod UIDs to namespace, name and owning workload (Kind/namespace/name, see
// docs/interfaces.md) from a node-scoped pod informer (field selector spec.nodeName), with a fallback that needs no
// API server: the kubelet's /var/log/pods/<namespace>_<name>_<uid>/ directories.
package identity
