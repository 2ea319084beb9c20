// Package testpki issues throw-away certificates for tests: a CA, server certificates for loopback addresses and
// client certificates with a chosen common name and DNS names, written as PEM files into a directory.
package testpki
