// Package dashboards builds fanout's Grafana dashboards and Grafana alert provisioning with the Grafana Foundation
// SDK. The generated files (json/*.json, provisioning/...) are committed; `make dashboards` regenerates them and a test
// fails when they are stale. Every panel's PromQL is checked against a real Prometheus in the tests.
package dashboards
