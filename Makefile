# Two commands on a fresh machine: `make run` (the nightly job on the local stack) and
# `make test`. Everything lands in .venv/ and .local/ (both git-ignored).
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(abspath include)
# The venv's tools (airflow, weed) first, for the programs our scripts start.
IN_VENV := PATH=$(abspath $(BIN)):$$PATH

.PHONY: run test up down bench bench-conversations bench-voices lint lock system-packages \
	cluster cluster-down test-cluster cluster-packages bench-cluster

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt constraints.txt
	python3 -m pip install --quiet uv
	python3 -m uv venv --quiet --allow-existing --python python3.11 $(VENV)
	python3 -m uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt -c constraints.txt
	python3 -m uv pip install --quiet --python $(BIN)/python --no-deps -r requirements-nodeps.txt
	touch $@

# Test dictations are synthesized at test time, the job store is tested on a real
# PostgreSQL server, and the UI tests drive Debian's Chromium; make run needs none of these.
system-packages:
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null && command -v chromium >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq espeak-ng sox libsox-fmt-mp3 postgresql chromium >/dev/null)

run: $(STAMP)
	$(IN_VENV) $(BIN)/python -m devstack.run_nightly

# The whole suite: with the tests that start Airflow's servers and drive its UI in Chromium,
# then the production shape as processes under faults (root, for network namespaces).
test: $(STAMP) system-packages cluster-packages
	MEDSCRIBE_TEST_AIRFLOW=1 MEDSCRIBE_TEST_UI=1 MEDSCRIBE_TEST_COMPOSE=1 $(IN_VENV) $(BIN)/python -m pytest
	$(MAKE) test-cluster

up: $(STAMP)
	$(IN_VENV) $(BIN)/python -m devstack.local_stack up --airflow

down:
	$(BIN)/python -m devstack.local_stack down

# The production shape of docker-compose.yaml as processes on network namespaces (root).
cluster-packages:
	@command -v redis-server >/dev/null && command -v ip >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq postgresql redis-server iproute2 >/dev/null)

cluster: $(STAMP) cluster-packages
	$(IN_VENV) $(BIN)/python -m devstack.cluster up

cluster-down:
	$(BIN)/python -m devstack.cluster down

# Nights through the Airflow REST API on the cluster, under faults (starts and stops it).
test-cluster: $(STAMP) system-packages cluster-packages
	CLUSTER_TESTS=1 $(IN_VENV) $(BIN)/python -m pytest tests/cluster

# One night through the running cluster with 1, then 3 engine workers (make cluster first).
BENCH_FILES ?= 2000
bench-cluster: $(STAMP) system-packages
	$(IN_VENV) $(BIN)/python include/bench/cluster_night.py --files $(BENCH_FILES)

# More voices for the benchmark corpus (it falls back to espeak-ng without them).
bench-voices:
	@command -v flite >/dev/null && command -v festival >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq flite festival festvox-kdlpc16k festvox-us-slt-hts >/dev/null)

# The engine is measured end to end through the local stack, which is stopped afterwards.
bench: $(STAMP) system-packages bench-voices
	$(IN_VENV) $(BIN)/python -m devstack.local_stack up
	. .local/stack.env && $(IN_VENV) $(BIN)/python include/bench/run.py --out include/bench/results; \
	  status=$$?; $(BIN)/python -m devstack.local_stack down; exit $$status

# Speaker labels and PHI identification on synthesized clinician-patient conversations.
bench-conversations: $(STAMP) system-packages bench-voices
	$(IN_VENV) $(BIN)/python include/bench/conversation_bench.py --out include/bench/results

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

lock: $(STAMP)
	(echo "# Every package pinned, as resolved here (regenerate: make lock)."; \
	 python3 -m uv pip freeze --python $(BIN)/python) > constraints.txt
