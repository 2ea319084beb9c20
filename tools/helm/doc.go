// Package helm pins the helm CLI as a Go tool in its own module so the project's main go.mod never depends on it.
// Build it with `go build -C tools/helm -o <dir>/helm helm.sh/helm/v3/cmd/helm` (see deploy's tests and the Makefile).
package helm
