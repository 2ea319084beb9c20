// Package scenario decodes and validates scenario files (format version 1, documented in scenarios/README.md): a
// fleet and its workloads' API-server traffic over time, replayed by package replay. Decoding walks the YAML node
// tree so that every error names the line and the field; unknown keys and bad values are errors, never panics.
package scenario
