# Switchboard — run `make help` for the targets.
#
# DATABASE_URL / TEST_DATABASE_URL are used when set; otherwise a private
# PostgreSQL cluster under .data/ is created (deploy/devdb.sh) and reused.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin/switchboard
DEVDB    := deploy/devdb.sh
DB_URL    = $(or $(DATABASE_URL),$(shell $(DEVDB) url))
TEST_URL  = $(or $(TEST_DATABASE_URL),$(shell $(DEVDB) url))

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_\/-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/switchboard
	$(GO) build -o $(BIN) ./cmd/switchboard

.PHONY: run
run: build ## Migrate and run worker + api + sandbox providers + demo traffic (switchboard dev)
	DATABASE_URL='$(DB_URL)' $(BIN) dev

.PHONY: test
test: ## Run every test with -race against a real PostgreSQL (and a real PgBouncer, installed if absent)
	deploy/pgbouncer/ensure.sh
	TEST_DATABASE_URL='$(TEST_URL)' $(GO) test -race -count=1 -timeout 20m ./...

.PHONY: generate
generate: ## Regenerate sqlc code in db/ from queries/ and migrations/
	$(GO) tool sqlc generate

.PHONY: generate/check
generate/check: ## Fail when generated code is out of date
	$(GO) tool sqlc generate
	@git diff --exit-code -- db/ || { echo "generated code is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- db/)" || { git status --porcelain -- db/; echo "generated files are not committed"; exit 1; }

.PHONY: db/migrate
db/migrate: build ## Apply pending migrations to DATABASE_URL (or the private cluster)
	DATABASE_URL='$(DB_URL)' $(BIN) migrate up

.PHONY: db/reset
db/reset: build ## Roll every migration back and apply them again (destroys data)
	DATABASE_URL='$(DB_URL)' $(BIN) migrate reset --yes

.PHONY: db/stop
db/stop: ## Stop the private PostgreSQL cluster
	$(DEVDB) stop

.PHONY: alerts/check
alerts/check: ## promtool check + unit-test the Prometheus alert rules (installs promtool if absent)
	deploy/prometheus/check.sh

.PHONY: bench
bench: build ## Enqueue, e2e, scale-out and soak against same-run baselines (~6 min, throwaway database)
	DATABASE_URL='$(DB_URL)' $(BIN) bench $(BENCH_ARGS)

.PHONY: chaos
chaos: build ## Crash and fault suite: 3 workers + api on a private cluster; SIGKILLs, a PG restart, provider faults (loopback, bounded)
	$(BIN) chaos $(CHAOS_ARGS)

.PHONY: chaos/delivery
chaos/delivery: build ## Delivery under faults: 10,000 messages, 20% 5xx, 10% 429, 5% timeouts, one provider outage
	$(BIN) chaos --mode delivery $(CHAOS_ARGS)

.PHONY: screenshots
screenshots: build ## River UI screenshots of a dead letter and a held job into docs/screenshots/ (real worker + api, throwaway database, headless Chromium; installs chromium if absent)
	deploy/screenshots/ensure-chromium.sh
	cd deploy/screenshots && $(GO) run . -bin ../../$(BIN) -db '$(DB_URL)' -out ../../docs/screenshots -chromium "$$(command -v chromium || echo /usr/bin/chromium)"

.PHONY: fuzz
fuzz: ## Every native fuzz target for FUZZTIME each (default 10s; the SQL API and FHIR pull ones use a real PostgreSQL); prints inputs tried and failures
	TEST_DATABASE_URL='$(TEST_URL)' FUZZTIME=$(or $(FUZZTIME),10s) deploy/fuzz.sh

.PHONY: lint
lint: ## gofmt and go vet (the service and deploy/screenshots, its own module)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	cd deploy/screenshots && $(GO) vet ./...

.PHONY: tidy/check
tidy/check: ## Fail when go.mod/go.sum (and deploy/screenshots') are not tidy (go mod tidy -diff)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit"; exit 1; }
	@cd deploy/screenshots && $(GO) mod tidy -diff || { echo "deploy/screenshots/go.mod is not tidy: run go mod tidy there and commit"; exit 1; }
