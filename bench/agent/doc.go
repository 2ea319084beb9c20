// Command agent measures fanout-agent's own footprint on a node under API load (issue 11: "RSS <= 40 MiB and CPU
// <= 1% of a core at 5,000 API calls/s on the node"). It builds and starts the real fanout-agent and
// fanout-aggregator binaries, a real etcd + kube-apiserver (e2e/harness) that holds the node's Node and Pod objects,
// and a simulated node (e2e/fleet): a cgroup subtree laid out like a kubelet's, ~30 pods of 5 workloads whose
// processes are born in their container cgroups. The pods' processes (this binary re-executed with -pod-load) call a
// loopback HTTPS stub API server (TLS, HTTP/2, keep-alive, ~1 KiB answers after ~1 ms) listed in --api.endpoints,
// 5,000 calls/s in total, so the kernel probe counts every call. Load windows alternate with idle windows of the same
// length; the agent process's CPU (utime+stime from /proc/<pid>/stat) and RSS (VmRSS every 500 ms, VmHWM at the end)
// are reported per condition, with the agent's counted rate from its /metrics next to the offered rate. Results
// replace the "Agent footprint" section of BENCHMARKS.md.
package main
