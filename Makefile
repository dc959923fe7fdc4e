# Baldur — the two commands a newcomer needs are `make run` and `make test`.
# `make help` lists the rest.

GO        ?= go
# The repository, wherever make is started from (make -C, make -f).
ROOT      := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PKGS      ?= ./...
BENCHTIME ?= 1s
FUZZTIME  ?= 60s
# The version the binaries print for --version and export as
# baldur_build_info (the commit comes from version control).
VERSION   ?= dev
LDFLAGS   := -X github.com/baldurfleet/baldur/internal/buildinfo.version=$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## install what the demo lacks, then run the whole fleet in one process with the demo (`bin/baldur dev --demo`; docs/dev.md)
	@$(ROOT)/scripts/setup run
	cd $(ROOT) && $(GO) build -ldflags "$(LDFLAGS)" -o bin/baldur ./cmd/baldur
	@cd $(ROOT) && scripts/foreground bin/baldur dev --demo

.PHONY: build
build: ## build every binary into bin/; VERSION=1.4.0 stamps the version (`--version`, baldur_build_info)
	cd $(ROOT) && $(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

.PHONY: test
test: ## install what the tests lack, then run every test with the race detector, against real NATS and PostgreSQL
	@$(ROOT)/scripts/setup test
	cd $(ROOT) && $(GO) test -race -timeout 15m $(PKGS)

.PHONY: setup
setup: ## install what `make run` and `make test` need on a fresh Debian/Ubuntu machine (scripts/setup)
	@$(ROOT)/scripts/setup test

.PHONY: chaos
chaos: ## run the fault-injection suite (internal/chaos, at most 15 minutes); BALDUR_CHAOS_SEED=n repeats a run
	$(GO) vet -tags chaos ./internal/chaos/...
	$(GO) test -race -tags chaos -count=1 -timeout 15m -v ./internal/chaos/...

.PHONY: generate
generate: ## regenerate the sqlc code under internal/store/dbsqlc
	$(GO) tool sqlc generate

.PHONY: verify
verify: ## gofmt, go vet, go mod tidy and generated code are clean
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff
	$(GO) tool sqlc vet
	$(GO) tool sqlc diff

.PHONY: bench
bench: ## run the benchmarks with allocation counts (BENCHTIME=1s by default)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

FUZZPKGS  ?= ./internal/events ./internal/replay ./internal/admin ./internal/store

.PHONY: fuzz
fuzz: ## run every fuzz target (wire-contract decoders, DLQ endpoints, admin API, dead letters through PostgreSQL) for FUZZTIME each (60s by default; Nx: N executions)
	@for p in $(FUZZPKGS); do \
		for t in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			echo "== $$p $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -timeout 10m $$p || exit 1; \
		done; \
	done
