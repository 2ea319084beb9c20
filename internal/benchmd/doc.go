// Package benchmd writes one benchmark's section of BENCHMARKS.md, leaving the other benchmarks' sections alone, so
// each `make bench-*` target can refresh its own results.
package benchmd
