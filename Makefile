# borderlink — the two commands: `make run` and `make test`.
# Both set everything up on a fresh Debian/Ubuntu machine.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CAP library's hot modules compiled with mypyc, rebuilt when a CAP source changes.
COMPILED := cap_schemas/.compiled
CONFIG ?= config/demo.toml

# What the README's commands use beside the daemon (command -> Debian package).
RUN_TOOLS := mosquitto_sub:mosquitto-clients mosquitto_pub:mosquitto-clients curl:curl
# System tools the tests use as real peers and referees.
SYSTEM_TOOLS := $(RUN_TOOLS) mosquitto:mosquitto multimon-ng:multimon-ng \
	minimodem:minimodem direwolf:direwolf atest:direwolf gen_packets:direwolf socat:socat \
	sox:sox espeak-ng:espeak-ng xmlsec1:xmlsec1 chromium:chromium

.PHONY: setup compile system-tools run-tools run test smoke lint typecheck pytest bench fuzz \
	chaos chaos-cluster clean

setup: $(STAMP) $(COMPILED)

# One line per step on a first run, nothing on the next.
$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (>= 3.11) is required"; exit 1; }
	@test -x $(PY) || { echo "borderlink: creating the Python environment in $(VENV)"; \
		python3 -m venv $(VENV) 2>/dev/null || { \
		echo "borderlink: installing python3-venv"; $(MAKE) --no-print-directory apt PKGS=python3-venv; \
		python3 -m venv $(VENV); }; }
	@echo "borderlink: installing the Python packages into $(VENV) (a minute or two the first time)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $(STAMP)

# The list of compiled modules is in tools/compile_cap.py. Without a C compiler or Python's
# headers (and no way to install them) the library stays pure Python, only slower; under
# CI=true tests/cap/test_compiled.py then fails.
compile: $(COMPILED)

$(COMPILED): $(STAMP) tools/compile_cap.py $(wildcard cap_schemas/*.py cap_schemas/rules/*.py)
	@command -v gcc >/dev/null || $(MAKE) --no-print-directory apt PKGS=gcc || true
	@$(PY) -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| $(MAKE) --no-print-directory apt PKGS=python3-dev || true
	@echo "borderlink: compiling the CAP hot modules with mypyc (about 15 s)"
	@$(PY) tools/compile_cap.py || { echo "borderlink: WARNING: mypyc compilation failed;" \
		"the CAP library runs as pure Python (slower)"; $(PY) tools/compile_cap.py --clean; }

# TOOLS: pairs command:package; NEED_PG=1 also wants PostgreSQL's server binaries.
define install_missing
	@missing=""; for pair in $(1); do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$(2)" ]; then ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; fi; \
	if [ -n "$$missing" ]; then \
		pkgs=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
		echo "borderlink: installing system tools:$$pkgs"; \
		$(MAKE) --no-print-directory apt PKGS="$$pkgs"; \
	fi
endef

system-tools:
	$(call install_missing,$(SYSTEM_TOOLS),postgresql)

run-tools:
	$(call install_missing,$(RUN_TOOLS),)

apt:
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(PKGS) >/dev/null

run: setup run-tools
	@echo "borderlink: starting the daemon on $(CONFIG) (Ctrl-C stops it)"
	@$(VENV)/bin/borderlink run $(CONFIG)

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tools

pytest: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(VENV)/bin/pytest $(PYTEST_ARGS)

test: setup system-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tools
	PATH="$$PATH:/usr/sbin:/sbin" $(VENV)/bin/pytest $(PYTEST_ARGS)

# The README's quick start as written, against make run's configuration on free ports
# (also part of make test).
smoke: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(VENV)/bin/pytest -q tests/test_readme.py

# Every decoder against generated and mutated input for FUZZ_SECONDS each (the short version
# runs in make test).
FUZZ_SECONDS ?= 30
fuzz: setup
	BORDERLINK_FUZZ_SECONDS=$(FUZZ_SECONDS) $(VENV)/bin/pytest tests/fuzz -q -s -p no:randomly

# Daemon and broker SIGKILLs while alerts flow (the short version runs in make test).
CHAOS_ARGS ?= --alerts 1000 --kills 100 --broker-kills 20
chaos: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(PY) -m bench.chaos $(CHAOS_ARGS)

# Three instances on one PostgreSQL ledger: instance, leader, PostgreSQL and broker kills while
# alerts flow; takeover times (the short version runs in make test).
CHAOS_CLUSTER_ARGS ?= --cluster 3 --alerts 600 --kills 20 --leader-kills 5 --pg-restarts 3 \
	--broker-kills 5
chaos-cluster: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(PY) -m bench.chaos $(CHAOS_CLUSTER_ARGS)

bench: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(PY) -m bench $(BENCH_ARGS)

clean:
	-test -x $(PY) && $(PY) tools/compile_cap.py --clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis var
