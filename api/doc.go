// Package api holds the wire types shared by the fanout agent, the aggregator and fanoutctl: protobuf messages and
// the gRPC service generated from fanout.proto (run `go generate ./api/...`; the generated files are committed).
package api
