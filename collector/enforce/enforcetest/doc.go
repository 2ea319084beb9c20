// Package enforcetest holds helpers for the kill switch's privileged tests: the privilege gate
// (FANOUT_REQUIRE_PRIVILEGED), bpffs and per-test pin dirs, test cgroups under the cgroup2 mount, API endpoint
// registration in the pinned api_endpoints/api_filter maps, and a loopback TLS HTTP/2 server.
package enforcetest
