# fanout — make help lists the targets.
GO ?= go
export FANOUT_REQUIRE_PRIVILEGED ?= $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)

.PHONY: help demo test test-unit generate generate-check build bench lint

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build all binaries into bin/
	$(GO) build -o bin/ ./cmd/...

generate: ## regenerate bpf2go and protobuf output (needs clang, bpftool, protoc)
	$(GO) generate ./bpf/... ./api/...

generate-check: generate ## fail if committed generated files are stale
	git diff --exit-code -- bpf api || (echo "generated files are stale: run make generate and commit" >&2; exit 1)

test-unit: ## unprivileged tests only
	FANOUT_REQUIRE_PRIVILEGED=0 $(GO) test -count=1 ./...

test: ## all tests (privileged ones run, never skip, as root)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...

bench: ## benchmarks; results written to BENCHMARKS.md
	@echo "bench targets are added per component"

demo: ## the main job: fleet incident replayed on a real API server
	@echo "demo not wired yet"
