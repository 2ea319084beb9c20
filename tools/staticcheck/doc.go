// Package staticcheck pins the staticcheck linter as a Go tool in its own module so the project's main go.mod never
// depends on it. `make lint` builds it into ~/.cache/fanout/tools and runs it over the main module.
package staticcheck
