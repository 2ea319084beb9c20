// Package detect turns a closed second of the fleet view into findings per workload, each with the numbers that
// explain it: (a) synchronized surges (many nodes' per-pod rate jumped against their own baseline within a short
// window), (b) projected overload of a workload still rolling out (per-pod cost x full placement, with response size
// growing with the fleet when responses are list-sized, vs the API server's remaining capacity), (c) total load
// beyond capacity with the top contributors. It also recognizes fleet-wide surges across most workloads at once (an
// API server restart making every client relist), which are not any one workload's fault.
package detect
