# nspidtrace — `make help` lists the targets.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN     := nspidtrace

# Debian packages `make generate` and the tests need (CI installs them with
# `make deps`): the BPF toolchain, and a real Docker engine with a busybox
# to import as the containers' image (no registry is needed), Podman,
# containerd (its CRI plugin, as a Kubernetes node runs it), and qemu for
# `make kernels`.
DEPS := clang-19 llvm-19 libbpf-dev docker.io containerd busybox-static podman runc qemu-system-x86 tmux chromium

# crictl drives containerd's CRI in the tests as the kubelet would; Debian
# has no package of it: `make deps` builds this version with go install.
CRICTL_VERSION := v1.37.0

.DEFAULT_GOAL := build
.PHONY: build generate check-generated test bench soak kernels image lint deps help

build: ## one static binary, ./nspidtrace (needs only Go: the BPF object is committed)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/nspidtrace

generate: ## rebuild the BPF object and its Go bindings from bpf/ (needs clang-19 and libbpf-dev: make deps)
	cd internal/loader && $(GO) generate ./...

check-generated: generate ## fail if the committed BPF object is not what bpf/ compiles to
	git diff --exit-code -- internal/loader || { echo "the committed BPF object is stale: run make generate and commit it" >&2; exit 1; }

# Packages run side by side, as on a busy machine: tests compare only what
# lives across both of their reads, and count only their own programs.
test: ## the whole test suite; as root the privileged tests run too (CI=true makes them mandatory)
	$(GO) test -count=1 ./...

bench: ## the performance figures: pipeline, replay, storm overhead, cost per process, trace memory, tree, one-shot, kernel BTF and watch frame times (root; a few minutes)
	$(GO) test -run '^$$' -bench Pipeline -benchmem -cpu 1 ./internal/loader
	$(GO) test -run '^$$' -bench Parse -benchmem -cpu 1 ./internal/events
	$(GO) test -run '^$$' -bench Replay -benchtime 3x ./internal/pidmap
	$(GO) test -run '^$$' -bench ForkExitStorm -benchtime 1x ./internal/loader
	$(GO) test -run '^$$' -bench 'Open|TreeFromKernel' -benchtime 10x ./internal/loader
	$(GO) test -run '^$$' -bench ColdShow -benchtime 40x ./cmd/nspidtrace
	$(GO) test -run '^$$' -bench ColdTree -benchtime 20x ./cmd/nspidtrace
	$(GO) test -run '^$$' -bench StormOverhead -benchtime 1x ./cmd/nspidtrace
	$(GO) test -run '^$$' -bench CostPerProcess -benchtime 1x ./cmd/nspidtrace
	$(GO) test -run '^$$' -bench TraceMemory -benchtime 1x ./cmd/nspidtrace
	$(GO) test -run '^$$' -bench . ./internal/kernelbtf
	$(GO) test -run '^$$' -bench Rows -benchmem -cpu 1 ./internal/watch

soak: ## record's memory through SOAK_MINUTES (default 30) of churn beside 10,000 live processes, printed each minute (root)
	$(GO) test -run '^$$' -bench Soak -benchtime 1x -timeout 0 ./cmd/nspidtrace

# IMAGE: the image's name; it is tagged with the version.
IMAGE ?= nspidtrace
image: build ## container image $(IMAGE):$(VERSION) of the static binary, FROM scratch (needs docker; no registry)
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .
	@echo "built $(IMAGE):$(VERSION)"

# KERNELS: Debian suites whose kernels to boot (default: all in test/kernels/run.sh).
kernels: ## boot Debian's kernels under qemu and run the checks in each: a table kernel × check (root; ~30 s a kernel)
	bash test/kernels/run.sh $(KERNELS)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out" >&2; exit 1; fi
	$(GO) vet ./...

deps: ## install the Debian packages generate and the tests need, and crictl (root)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEPS)
	$(GO) version -m "$$(command -v crictl)" 2>/dev/null | grep -q 'sigs.k8s.io/cri-tools[[:space:]]*$(CRICTL_VERSION)' || \
		GOBIN=/usr/local/bin $(GO) install sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'
