// Package ramp places a node in a release ramp: each node unblocks at a step chosen by a hash of its name plus a
// per-node jitter, so a release reaches the fleet gradually and every replica and agent computes the same schedule.
package ramp
