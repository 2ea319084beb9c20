// Package bpf holds fanout's kernel programs and their bpf2go-generated loaders (the generated .go and .o files are
// committed, so a fresh clone builds without clang).
//
// traffic.bpf.c counts per-cgroup API-server traffic (cgroup_skb ingress/egress, cgroup/connect4|6); endpoints.h
// holds the API endpoint set; blocked.h the kill switch's block list. Maps are pinned by name under the agent
// instance's pin dir so that every object of one instance shares them. Regenerate with `make generate`.
package bpf
