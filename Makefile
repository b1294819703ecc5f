# borderlink — the two commands: `make run` and `make test`.
# Both set everything up on a fresh Debian/Ubuntu machine.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= config/demo.toml

# System tools the tests use as real peers and referees (command -> Debian package).
SYSTEM_TOOLS := mosquitto:mosquitto mosquitto_sub:mosquitto-clients multimon-ng:multimon-ng \
	minimodem:minimodem direwolf:direwolf atest:direwolf gen_packets:direwolf socat:socat \
	sox:sox espeak-ng:espeak-ng xmlsec1:xmlsec1

.PHONY: setup system-tools run test lint typecheck pytest bench fuzz chaos clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (>= 3.11) is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV) || { \
		echo "venv missing; installing python3-venv"; $(MAKE) --no-print-directory apt PKGS=python3-venv; \
		python3 -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		cmd=$${pair%%:*}; pkg=$${pair##*:}; \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		pkgs=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
		echo "installing system tools:$$pkgs"; \
		$(MAKE) --no-print-directory apt PKGS="$$pkgs"; \
	fi

apt:
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(PKGS) >/dev/null

run: setup
	$(VENV)/bin/borderlink run $(CONFIG)

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(VENV)/bin/pytest $(PYTEST_ARGS)

test: setup system-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PATH="$$PATH:/usr/sbin:/sbin" $(VENV)/bin/pytest $(PYTEST_ARGS)

# Every decoder against generated and mutated input for FUZZ_SECONDS each (the short version
# runs in make test).
FUZZ_SECONDS ?= 30
fuzz: setup
	BORDERLINK_FUZZ_SECONDS=$(FUZZ_SECONDS) $(VENV)/bin/pytest tests/fuzz -q -s -p no:randomly

# Daemon and broker SIGKILLs while alerts flow (the short version runs in make test).
CHAOS_ARGS ?= --alerts 1000 --kills 100 --broker-kills 20
chaos: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(PY) -m bench.chaos $(CHAOS_ARGS)

bench: setup system-tools
	PATH="$$PATH:/usr/sbin:/sbin" $(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis var
