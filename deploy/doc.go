// Package deploy holds fanout's Kubernetes deployment: the Helm chart (helm/fanout), the plain manifests rendered from
// it (manifests/), and the Prometheus alert rules (prometheus/). Its tests lint and render the chart with a helm CLI
// built from the tools/helm module, check the committed manifests are fresh and least-privileged, and validate them
// against a real kube-apiserver (e2e/harness) with server-side dry-run, and run the agent and aggregator binaries built
// from this repository with the chart's exact args (plus --config.check) so a flag drifting between chart and binary
// fails a test.
package deploy
