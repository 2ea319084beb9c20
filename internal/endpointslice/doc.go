// Package endpointslice reads a discovery.k8s.io/v1 EndpointSlice into what fanout uses of it: the ready IP addresses
// (parsed, IPv4-mapped IPv6 unmapped) and the TCP ports. The agent (the addresses its probes match as API traffic) and
// the aggregator (the API server replicas it scrapes) read the EndpointSlices of Service default/kubernetes through
// it, so both agree on which endpoints count; each keeps its own port policy on top (every port, or one preferred).
//
// A slice is input: whoever can write EndpointSlices in namespace default, or answer in the API server's place,
// controls it. Read keeps at most MaxAddresses addresses and MaxPorts ports of one slice.
package endpointslice
