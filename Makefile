# traceflow-fast. `make help` lists the targets.

GO       ?= go
BIN      := bin/traceflow-fast
PKGS     := ./...
# Debian packages the tests and the lab need.
# scamper is traced beside in the lab (TestFaultNoise): its replies must not be taken for ours.
# prometheus scrapes the monitor in the lab; its promtool checks the metrics and the alert rules.
# tmux is the terminal the live view (--tui) is tested in.
TEST_DEBS := iproute2 iputils-ping nftables python3-scapy clang llvm libbpf-dev graphviz tshark chromium libcap2-bin scamper bsdutils prometheus tmux
# The browser view (--format viz) inlines vis-network, which viz/package-lock.json
# pins and `make viz-deps` installs with npm; builds with TAGS embed it.
TAGS     := visnetwork
VIZ_LIB  := viz/node_modules/vis-network/standalone/umd/vis-network.min.js
BENCH_DEBS := dublin-traceroute zmap linux-perf
# Without TAGS, viz has no library to embed: `make test` tests again, in
# that build, the packages that import viz. Of the command's tests only those
# of --format viz (named *Viz*) differ: its lab tests run a binary built
# without the tag (lab_test.go) in both passes.
UNTAGGED := ./viz/... ./output/...
UNTAGGED_CMD := -run Viz ./cmd/traceflow-fast

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: viz-deps ## build bin/traceflow-fast (no clang needed: the eBPF object is committed)
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -trimpath -o $(BIN) ./cmd/traceflow-fast

.PHONY: viz-deps
viz-deps: $(VIZ_LIB) ## install vis-network into viz/node_modules with npm ci (installs Debian's nodejs npm if npm is missing)

$(VIZ_LIB): viz/package.json viz/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "installing: nodejs npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	npm ci --prefix viz --no-audit --no-fund --ignore-scripts
	@touch $@

.PHONY: generate
generate: ## regenerate the eBPF object and its Go bindings (needs clang, llvm)
	$(GO) generate ./bpf/...

.PHONY: check-generate
check-generate: generate ## fail when the committed eBPF object differs from its source
	git diff --exit-code -- bpf/

.PHONY: deps
deps: ## install the Debian packages the tests need (as root)
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: bench-deps
bench-deps: deps ## also install the peer tools compared in the benchmarks
	@missing=""; for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: test
test: deps build check-generate ## run every test, lab tests included, in both builds (as root; CI=true makes skips fail)
	$(GO) vet $(PKGS)
	$(GO) vet -tags $(TAGS) $(PKGS)
	$(GO) test -tags $(TAGS) -count=1 -timeout 9m $(PKGS)
	$(GO) test -count=1 -timeout 9m $(UNTAGGED)
	$(GO) test -count=1 -timeout 9m $(UNTAGGED_CMD)
	$(GO) test -race -count=1 -timeout 5m ./tracer/...

.PHONY: demo
demo: deps build ## raise the 4-way diamond lab, trace it with 16 path IDs, tear it down
	@scripts/demo.sh

.PHONY: viz-screenshot
viz-screenshot: deps build ## trace the diamond lab and scan its /20 with --format viz, and screenshot the pages to docs/viz-demo.png and docs/viz-bulk.png
	@GO=$(GO) scripts/viz-screenshot.sh

.PHONY: bench
bench: bench-deps build ## Go benchmarks, then the lab comparisons with scamper (one diamond, then MDA)
	$(GO) test -run '^$$' -bench . -benchmem ./probe ./analysis ./analysis/mda ./capture ./targets ./tracer ./bpf
	scripts/bench-diamond.sh
	scripts/bench-mda.sh

.PHONY: bench-bulk
bench-bulk: bench-deps build ## 4,094 destinations through the diamond lab, against scamper (PATHS=16|auto, RUNS=3, PERF=1)
	scripts/bench-bulk.sh

.PHONY: bench-viz
bench-viz: deps build ## the browser view of 254 to 65,534 destinations in headless Chromium: size, load, long tasks (BENCHTIME=3x)
	scripts/bench-viz.sh

.PHONY: bench-send
bench-send: bench-deps build ## raw send rate into a sink, against zmap (TTL=4, RUNS=3)
	scripts/bench-send.sh

.PHONY: bench-monitor
bench-monitor: build ## the monitor over 1,000 destinations every 5 s: RSS, CPU and probes per cycle (CYCLES=100)
	scripts/bench-monitor.sh

.PHONY: bench-memory
bench-memory: build ## peak RSS of a scan of 1,048,574 destinations
	scripts/bench-memory.sh

.PHONY: fuzz
fuzz: ## run every native fuzz target for FUZZTIME each (default 20s) and print the executions
	@scripts/fuzz.sh

.PHONY: clean
clean: ## remove build output
	rm -rf bin
