// Package server is the aggregator's gRPC front: agents stream NodeReports in and get the replica's full directive
// set back (on every change and on a refresh period); operators call Status, Trip and Release. Agents authenticate
// with a per-node bearer token (from a file) and/or a verified mTLS client certificate; either binds the stream to
// exactly one node (no wildcard credential: one credential cannot report as a fleet). Reports from unauthenticated
// agents, for another node than the stream's, and invalid or late reports, are rejected and counted by reason. A
// wall-clock loop closes each second after a grace period so that every replica closes the same windows.
package server
