// Package childproc runs the binaries the end-to-end tests and the benchmarks start (fanout-agent,
// fanout-aggregator): each in its own process group with its output in a log file, stopped with SIGTERM to the
// group and SIGKILL after a grace period, and waited for until an HTTP endpoint answers.
package childproc
