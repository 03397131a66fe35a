# The two commands: `make run` starts the whole product; `make test` runs every test.
GO      ?= go
BIN     := bin
SERVICES := api auth workspace gpr-scheduler provisioner telemetry nodeagent

.PHONY: run build test vet fmt-check bench tidy clean deps

run: deps ## every service in one process, embedded NATS, simulated GPU cluster
	$(GO) build -o $(BIN)/egs ./services/standalone/cmd/egs
	./$(BIN)/egs

build: ## one binary per service, plus the standalone
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do $(GO) build -o $(BIN)/$$s ./services/$$s/cmd/$$s || exit 1; done
	$(GO) build -o $(BIN)/egs ./services/standalone/cmd/egs

test: deps fmt-check vet ## all tests of every module, with the race detector
	$(GO) test -race -count=1 -timeout 20m work

deps: ## programs besides Go that run and test need (redis-server), from Debian's packages when missing
	@bash scripts/deps.sh

vet:
	$(GO) vet work

fmt-check:
	@out=$$(gofmt -l libs services); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: ## admissions/s through the bus, decision latency, one GPR's latency, telemetry ingest (docs/benchmarks.md)
	$(GO) test -run '^$$' -bench 'BenchmarkAdmission$$' -benchtime 2x -timeout 30m ./services/standalone/
	$(GO) test -run '^$$' -bench 'BenchmarkSchedule$$|BenchmarkDecision$$' -benchtime 300x ./services/gpr-scheduler/internal/queue/
	$(GO) test -run '^$$' -bench 'BenchmarkGPRRoundTrip$$' -benchtime 200x -timeout 20m ./services/standalone/
	$(GO) test -run '^$$' -bench 'BenchmarkIngest$$' -benchtime 2x -timeout 20m ./services/telemetry/service/

tidy:
	@for m in libs libs/testkit $(addprefix services/,$(SERVICES) standalone); do (cd $$m && $(GO) mod tidy) || exit 1; done
	$(GO) work sync

clean:
	rm -rf $(BIN) .egs
