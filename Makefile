# kioskfleet — see README.md. `make run` installs what the build and the simulated kiosk need
# (Debian packages), builds and starts the whole system; `make test` installs the test peers and
# runs every test with -race.
GO      ?= go
BIN     := bin
GOFLAGS ?=
export CGO_ENABLED := 1

CMDS := fleet-hub=./hub/cmd/fleet-hub kiosk-agent=./agent/cmd/kiosk-agent fleetctl=./console/cmd/fleetctl devsim=./drivers/cmd/devsim fleetsim=./agent/cmd/fleetsim fleet-console=./console/cmd/fleet-console

.PHONY: all build run run-deps run-cluster cluster-deps test test-deps bench soak fuzz vet clean

all: build

build:
	@mkdir -p $(BIN)
	@for c in $(CMDS); do n=$${c%%=*}; p=$${c#*=}; \
	  if [ -d $$p ]; then $(GO) build $(GOFLAGS) -o $(BIN)/$$n $$p || exit 1; fi; done

run: run-deps build
	./scripts/run.sh

run-deps:
	./.ci/install-peers run

run-cluster: cluster-deps build
	./scripts/cluster.sh

cluster-deps:
	./.ci/install-peers cluster

test-deps:
	./.ci/install-peers test

test: test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

bench: build
	./scripts/bench.sh

soak: build
	KF_SOAK=1 $(GO) test -count=1 -v -timeout 120m -run Soak ./e2e/

fuzz:
	./scripts/fuzz.sh

clean:
	rm -rf $(BIN)
