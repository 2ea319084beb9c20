// Package prometheus holds fanout's Prometheus alert rules (rules.yaml) and their `promtool test rules` unit tests
// (tests/*.yaml). The Go test in this package runs promtool over them; the Helm chart and the Grafana alert
// provisioning files carry the same rules and are checked against this file by their own tests.
package prometheus
