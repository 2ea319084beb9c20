# fanout — make help lists the targets.
GO ?= go
export FANOUT_REQUIRE_PRIVILEGED ?= $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)

.PHONY: help deps demo test test-unit generate generate-check build bench bench-probe bench-aggregator bench-attack bench-ramp lint

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## check the machine (root, kernel BTF >= 5.8, cgroup v2, bpffs) and apt-get install missing tools; demo, test and generate run it
	@tools/ensure-deps

build: ## build all binaries into bin/
	$(GO) build -o bin/ ./cmd/...

generate: deps ## regenerate bpf2go and protobuf output (needs clang, bpftool, protoc)
	$(GO) generate ./bpf/... ./api/...

generate-check: generate ## fail if committed generated files are stale
	git diff --exit-code -- bpf api || (echo "generated files are stale: run make generate and commit" >&2; exit 1)

test-unit: ## unprivileged tests only
	FANOUT_REQUIRE_PRIVILEGED=0 $(GO) test -count=1 ./...

test: deps e2e-bins helm ## all tests (privileged ones run, never skip, as root; installs what it needs, builds the control plane and helm once; lint first)
	@echo "compiling fanout (the tests that start fanout's binaries then find them in the Go build cache)"
	$(GO) build ./...
	$(MAKE) lint
	$(GO) test -count=1 -timeout 40m ./...

bench: bench-probe bench-aggregator bench-attack bench-agent bench-ramp ## benchmarks; results written to BENCHMARKS.md
	@echo "bench targets are added per component"

bench-probe: ## probe overhead per packet (root; interleaved A/B over loopback), section "Probe overhead" of BENCHMARKS.md
	$(GO) run ./bench/probe -out BENCHMARKS.md

demo: deps e2e-bins ## the main job: the incident on a simulated fleet and a real kube-apiserver, dry-run vs armed (root); writes fanout-demo-report.html
	$(GO) run ./e2e/cmd/fanout-demo

.PHONY: e2e-bins
e2e-bins: ## build (or find cached) etcd + kube-apiserver for demo and tests (10-25 min the first time on 2 cores, cached in ~/.cache/fanout; $FANOUT_K8S_BIN_DIR overrides)
	$(GO) run ./e2e/cmd/e2e-bins

STATICCHECK_VERSION := $(shell awk '$$1=="honnef.co/go/tools"{print $$2}' tools/staticcheck/go.mod)
STATICCHECK := $(HOME)/.cache/fanout/tools/staticcheck-$(STATICCHECK_VERSION)

$(STATICCHECK): tools/staticcheck/go.mod
	mkdir -p $(dir $(STATICCHECK)) && $(GO) -C tools/staticcheck build -o $(STATICCHECK) honnef.co/go/tools/cmd/staticcheck

lint: $(STATICCHECK) ## go vet + staticcheck (pinned in tools/staticcheck/go.mod; checks in staticcheck.conf) over every package
	$(GO) vet ./...
	$(STATICCHECK) ./...

.PHONY: helm dashboards manifests alerts-test
HELM_VERSION := $(shell awk '$$1=="helm.sh/helm/v3"{print $$2}' tools/helm/go.mod)
HELM := $(HOME)/.cache/fanout/tools/helm-$(HELM_VERSION)

$(HELM): tools/helm/go.mod
	mkdir -p $(dir $(HELM)) && $(GO) -C tools/helm build -o $(HELM) helm.sh/helm/v3/cmd/helm

helm: $(HELM) ## build the helm CLI (own module tools/helm) into ~/.cache/fanout/tools

dashboards: ## regenerate Grafana dashboards and alert provisioning (dashboards/)
	$(GO) run ./dashboards/gen -out dashboards -rules deploy/prometheus/rules.yaml

manifests: $(HELM) ## sync the chart's rules copy and render deploy/manifests from the Helm chart
	cp deploy/prometheus/rules.yaml deploy/helm/fanout/files/rules.yaml
	$(HELM) lint --strict deploy/helm/fanout
	$(HELM) template fanout deploy/helm/fanout --namespace fanout-system --kube-version v1.37.2 \
		--set namespace.create=true --set tls.existingServerSecret=fanout-tls-server \
		--set tls.existingAgentSecret=fanout-tls-agents > deploy/manifests/fanout.yaml

alerts-test: ## promtool check + unit-test the Prometheus alert rules
	promtool check rules deploy/prometheus/rules.yaml
	promtool test rules deploy/prometheus/tests/*.yaml

.PHONY: test-killswitch
test-killswitch: ## kill switch tests (privileged as root: real cgroups, BPF, sock_diag; ~5 s)
	$(GO) test -count=1 -v ./collector/blockmap ./collector/sockdestroy ./collector/enforce/... ./collector/nodectl

bench-aggregator: ## aggregator ingest: 10,000 synthetic agents over real gRPC at 1 Hz; CPU, RSS, onset->decision; section "Aggregator ingest" of BENCHMARKS.md
	$(GO) build -o bin/fanout-aggregator ./cmd/fanout-aggregator
	$(GO) run ./bench/aggregator -aggregator-bin bin/fanout-aggregator -out BENCHMARKS.md

bench-attack: ## aggregator under a workload-name cardinality attack (3 hostile nodes, 10,000 fresh names a report, ~1 min); fails when RSS > 512 MiB, a /metrics scrape > 2 s or an agent's report is rejected; section "Cardinality attack" of BENCHMARKS.md
	$(GO) build -o bin/fanout-aggregator ./cmd/fanout-aggregator
	$(GO) run ./bench/attack -aggregator-bin bin/fanout-aggregator -out BENCHMARKS.md

.PHONY: e2e-incident
e2e-incident: e2e-bins ## replay the incident on a real kube-apiserver with NO fanout (unprotected baseline; writes incident-report.html)
	$(GO) run ./e2e/cmd/incident

.PHONY: test-apiendpoints-remediate
test-apiendpoints-remediate: e2e-bins ## API endpoint discovery + durable remediation against a real kube-apiserver (~15 s)
	$(GO) test -count=1 ./collector/apiendpoints ./aggregator/remediate

.PHONY: bench-agent
bench-agent: e2e-bins ## the agent's own CPU and RSS on a simulated node at 5,000 API calls/s (root; real kube-apiserver, agent and aggregator; interleaved idle/load windows, ~3 min); section "Agent footprint" of BENCHMARKS.md
	$(GO) run ./bench/agent -out BENCHMARKS.md

bench-ramp: ## release ramp spread with default flags (api/ramp placement, 4 to 10,000 nodes; computed); section "Release ramp spread" of BENCHMARKS.md
	$(GO) run ./bench/ramp -out BENCHMARKS.md
