// Package apiendpoints discovers the addresses pods use to reach the Kubernetes API server, for the agent's
// api_endpoints BPF map: the ClusterIP(s) and port(s) of Service default/kubernetes (matched before NAT) and the ready
// addresses and ports of its EndpointSlices (matched after NAT or when clients dial the real endpoints), IPv4 and IPv6.
//
// A static seed (flag-provided endpoints and the in-cluster KUBERNETES_SERVICE_HOST/PORT environment) is delivered
// before any API call and stays in the set, so the agent counts API traffic before and without the API server. The
// discovered part is kept current by two narrowly scoped informers, one LIST+WATCH each (Service: namespace default,
// field selector metadata.name=kubernetes; EndpointSlices: namespace default, label kubernetes.io/service-name=
// kubernetes), started after a random jitter so a fleet of agents restarting together does not arrive at once. Every
// change of the effective set is delivered to a callback as the full, sorted, deduplicated set.
package apiendpoints
