# The two commands: `make run` starts the whole product; `make test` runs every test.
GO      ?= go
BIN     := bin
SERVICES := api auth workspace gpr-scheduler provisioner telemetry nodeagent

.PHONY: fuzz run build test vet fmt-check bench tidy clean kube-bins kube-up kube-down deps screenshots

run: deps ## every service in one process, embedded NATS, simulated GPU cluster
	$(GO) build -o $(BIN)/egs ./services/standalone/cmd/egs
	./$(BIN)/egs

build: ## one binary per service, plus the standalone
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do $(GO) build -o $(BIN)/$$s ./services/$$s/cmd/$$s || exit 1; done
	$(GO) build -o $(BIN)/egs ./services/standalone/cmd/egs

test: deps fmt-check vet kube-bins ## all tests of every module, with the race detector, then the fuzz targets for a bounded time
	$(GO) test -race -count=1 -timeout 20m work
	@$(MAKE) --no-print-directory fuzz

FUZZTIME ?= 10s
fuzz: ## the auth fuzz targets (token parsing, auth request bodies, user specs), $(FUZZTIME) each
	$(GO) test -run '^$$' -fuzz '^FuzzAuthenticate$$' -fuzztime $(FUZZTIME) ./services/api/internal/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzAuthBodies$$' -fuzztime $(FUZZTIME) ./services/api/internal/httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./services/auth/internal/users/

# make test also needs Chromium, for the portal's browser tests (a prerequisite
# sees the target-specific value of the target that asked for it).
test screenshots: DEPS_FLAGS := --browser

deps: ## programs besides Go that run and test need (redis-server; Chromium for test), from Debian's packages when missing
	@bash scripts/deps.sh $(DEPS_FLAGS)

kube-bins: ## build etcd, kube-apiserver, kube-controller-manager from source once per version (cached in ~/.cache/egs/kube)
	@scripts/kube-bins.sh >/dev/null

kube-up: ## a local control plane on loopback; the last line printed is its admin kubeconfig
	@scripts/kube-up.sh

kube-down:
	@scripts/kube-down.sh

screenshots: deps ## the portal's screenshots in docs/screenshots, taken by its browser tests
	$(GO) test -count=1 -run 'TestPortalLoginPage|TestPortalAcceptance' ./services/standalone/ -portal.screenshots=$(CURDIR)/docs/screenshots

vet:
	$(GO) vet work

fmt-check:
	@out=$$(gofmt -l libs services); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: ## admissions/s through the bus, decision latency, one GPR's latency, telemetry ingest, auth vs ory/hydra (docs/benchmarks.md)
	$(GO) test -run '^$$' -bench 'BenchmarkAdmission$$' -benchtime 1x -count 2 -timeout 40m ./services/standalone/
	$(GO) test -run '^$$' -bench 'BenchmarkSchedule$$|BenchmarkDecision$$' -benchtime 300x ./services/gpr-scheduler/internal/queue/
	$(GO) test -run '^$$' -bench 'BenchmarkStatusHead$$' -benchtime 10x ./services/gpr-scheduler/internal/queue/
	$(GO) test -run '^$$' -bench 'BenchmarkGPRRoundTrip$$' -benchtime 200x -timeout 20m ./services/standalone/
	$(GO) test -run '^$$' -bench 'BenchmarkIngest$$' -benchtime 2x -timeout 20m ./services/telemetry/service/
	$(GO) test -run '^$$' -bench 'BenchmarkAuth$$' -benchtime 1x -timeout 30m ./services/standalone/

tidy:
	@for m in libs libs/testkit $(addprefix services/,$(SERVICES) standalone); do (cd $$m && $(GO) mod tidy) || exit 1; done
	$(GO) work sync

clean:
	rm -rf $(BIN) .egs
