// Package saturation measures where a real kube-apiserver saturates under cluster-wide LISTs and compares it with the
// headroom fanout's aggregator learned: LIST clients are added one by one (each a pod process of one Deployment on a
// simulated node with a real fanout-agent) until an unrelated normal user's GET p99 passes 1 s (the Kubernetes API
// SLO); the kernel-measured load at that stage and the most load any stage served (a server pushed past saturation may
// serve less than its plateau) bound the measured saturation load.
package saturation
