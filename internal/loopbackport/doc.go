// Package loopbackport picks free loopback TCP ports for the child processes the e2e harness and the benchmarks
// start (API servers, agents, aggregators), which bind the port themselves some time later.
//
// Asking the kernel for port 0 and closing the listener is racy twice over: the kernel may hand the same port to the
// next caller before the first child has bound it, and the port lies in the ephemeral range that every outgoing
// connection draws from (the likely cause, not a confirmed one, of a 16-node demo whose agent exited during
// start-up). Pick hands out ports outside the ephemeral range (net.ipv4.ip_local_port_range; below it on Linux's
// default), each at most once per process, in sequence from a random start so that concurrent test processes rarely
// meet, and only ports that could be bound when picked.
package loopbackport
