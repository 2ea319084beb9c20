// Package bpf holds fanout's kernel programs and their bpf2go-generated loaders (the generated .go and .o files are
// committed, so a fresh clone builds without clang).
//
// sockops.bpf.c counts per-cgroup API-server traffic with per-socket callbacks on API sockets only (the default
// design: about one run per request/response on kernels >= 6.10), and measures response latency and connection
// outcomes; traffic.bpf.c counts it on every packet (cgroup_skb ingress/egress, cgroup/connect4|6: the fallback, and
// the bridge for sockets opened before an upgrade); enforce.bpf.c is the kill switch's connect deny; endpoints.h
// holds the API endpoint set; blocked.h the kill switch's block list. Maps are pinned by name under the agent
// instance's pin dir so that every object of one instance shares them. Regenerate with `make generate`.
package bpf
