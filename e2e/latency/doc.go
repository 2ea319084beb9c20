// Package latency measures the API server's health as an unrelated client sees it: a normal (non-exempt) user GETs
// one small object at a fixed rate, each call timed, and the samples are summarised as p50/p99 per time window. It is
// the "is the control plane still usable for everyone else" signal of the e2e tests and the demo.
package latency
