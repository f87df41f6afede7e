# Every command a Qala user runs. `make run` and `make test` set up whatever is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export QALA_WAREHOUSE ?= $(CURDIR)/warehouse
export QALA_AIRFLOW_PORT ?= 8080
# Two whole years (2024-2025): the rolling 12-month KPIs (SAF-01, SAF-02, HCS-03) need the 12
# months before their latest window, and the latest window is then the Sergek year in Astana.
START ?= 2024-01-01
DAYS ?= 731
# The demo world: 1.0 = a realistic national day. The big feeds (timetables, taps, FHIR, rosters)
# run at SCALE; the road-accident register and the Aqkol gas payments are small, and at full size
# their KPIs are not all suppressed as small counts.
SCALE ?= 0.005
FEED_SCALES ?= safety/road_accidents=1 housing/utility_payments=1
SEED ?= 42
# Share of records and files given a planted defect (qala simulate's default is 0.002); the demo
# plants none, so that its KPIs show the simulator's planted effects alone (`make gate-audit`
# shows the gates catching every kind of defect).
DEFECTS ?= 0
DOMAIN ?=
DATE ?=
FROM ?=
TO ?=
ROWS ?= 2000000
SIM_SCALE ?= 0.1
# the month of every feed the bench's dbt section builds on (0: skip that section)
DBT_SCALE ?= 0.002
# make gate-audit: days from 2025-03-30, scale of the big feeds, share of planted defects
AUDIT_DAYS ?= 5
AUDIT_SCALE ?= 0.02
AUDIT_DEFECTS ?= 0.2
# make fuzz: fuzzed landings per format (FUZZ_FORMATS: a subset, e.g. "csv oneroster")
FUZZ_INPUTS ?= 500
FUZZ_FORMATS ?=
# make chaos: trials (CHAOS_KINDS: a subset of load replay dbt scorecard), then Airflow task kills
CHAOS_TRIALS ?= 200
CHAOS_KINDS ?=
CHAOS_AIRFLOW ?= 8

.PHONY: setup browser run test ingest backfill up sql docs bench replay lake-check repair gate-audit fuzz chaos scorecard clean-warehouse test-fast

# --- set-up: a locked venv, the DuckDB extensions from their PyPI packages, the dbt manifest
$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: pyproject.toml devkit/pyproject.toml uv.lock | $(BIN)/uv
	# --compile-bytecode: every Airflow task, dbt and GX process would otherwise compile its
	# imports from source again where bytecode is not written (PYTHONDONTWRITEBYTECODE): ~10 s each.
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --inexact --compile-bytecode --python $(BIN)/python
	$(BIN)/python -c "from transforms.lake import install_extensions; install_extensions()"
	touch $@

dbt_project/target/manifest.json: $(VENV)/.synced $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' -o -name '*.md' 2>/dev/null | grep -v -e target/ -e logs/)
	cd dbt_project && DBT_SEND_ANONYMOUS_USAGE_STATS=False ../$(BIN)/dbt parse --quiet --profiles-dir . --log-path logs

setup: $(VENV)/.synced dbt_project/target/manifest.json

# --- Chromium prints the scorecard to PDF and runs the scorecard's browser test: Debian's package
# (Playwright's own browser download needs a host this network does not reach). Installed when
# missing and run as root; otherwise a warning, and the page is written without its PDF.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || test -n "$$QALA_CHROMIUM" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing, so no scorecard PDF and no browser test: install it (Debian: sudo apt-get install chromium) or set QALA_CHROMIUM"; fi; }

# --- the main job: simulate DAYS days from START, load them through Airflow, build the KPIs
run: setup browser
	$(BIN)/qala run --start $(START) --days $(DAYS) --scale $(SCALE) --feed-scale $(FEED_SCALES) --seed $(SEED) --defect-rate $(DEFECTS)

# --- one ingest DAG run for one landing day: make ingest DOMAIN=safety DATE=2025-03-01
ingest: setup
	@test -n "$(DOMAIN)" -a -n "$(DATE)" || { echo "usage: make ingest DOMAIN=<domain> DATE=YYYY-MM-DD"; exit 2; }
	$(BIN)/qala ingest --domain $(DOMAIN) --date $(DATE)

# --- reload a range of landing days through an Airflow backfill: make backfill FROM=2025-03-01 TO=2025-03-31 [DOMAIN=safety]
backfill: setup
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [DOMAIN=<domain>]"; exit 2; }
	$(BIN)/qala backfill --from $(FROM) --to $(TO) $(if $(DOMAIN),--domains $(DOMAIN))

# --- the Airflow UI (and scheduler) on this warehouse until Ctrl-C
up: setup
	$(BIN)/qala up

# --- a read-only SQL shell on the lake (DuckDB CLI); works while loads run
sql: setup
	@test -f $(QALA_WAREHOUSE)/attach.sql || $(BIN)/qala init
	$(BIN)/duckdb -init $(QALA_WAREHOUSE)/attach.sql

# --- the dbt docs site (every model, column, test, lineage graph) as one offline HTML file
docs: setup
	@test -f $(QALA_WAREHOUSE)/attach.sql || $(BIN)/qala init
	# umask 077: what dbt writes into the warehouse is its owner's alone, as from every qala command (README: Security)
	cd dbt_project && umask 077 && DBT_SEND_ANONYMOUS_USAGE_STATS=False ../$(BIN)/dbt docs generate --static --quiet --profiles-dir . \
		--target-path $(QALA_WAREHOUSE)/reports/dbt_docs --log-path logs
	@echo "dbt docs: $(QALA_WAREHOUSE)/reports/dbt_docs/static_index.html"

scorecard: setup browser
	$(BIN)/qala scorecard

# --- speed and memory against DuckDB's own CSV → Parquet on the same file; the dbt build in
# Airflow against plain, and a day's incremental build against a full one
bench: setup
	$(BIN)/qala bench --rows $(ROWS) --sim-scale $(SIM_SCALE) --dbt-scale $(DBT_SCALE)

# --- one batch checked again after its contract or suite was fixed: make replay FEED=safety/road_accidents BATCH=<batch_id>
replay: setup
	@test -n "$(FEED)" -a -n "$(BATCH)" || { echo "usage: make replay FEED=<domain>/<feed> BATCH=<batch_id>"; exit 2; }
	$(BIN)/qala replay --feed $(FEED) --batch $(BATCH)

# --- rotate the pseudonymisation key: every landed file of the hashed feeds reloaded under a new key,
# dbt's models on them rebuilt, the old key retired; re-run to resume (README: Rotating the pseudonymisation key)
# EXPIRE_SNAPSHOTS=1 also expires the lake's snapshots from before the rotation (they hold old-key hashes)
EXPIRE_SNAPSHOTS ?=
.PHONY: rekey
rekey: setup
	$(BIN)/qala rekey $(if $(EXPIRE_SNAPSHOTS),--expire-snapshots)

# --- lake data files missing or damaged under the catalog: list them; take them out and reload their landed files
lake-check: setup
	$(BIN)/qala lake-check

repair: setup
	$(BIN)/qala repair

# --- recall and precision of the row checks and gates against the simulator's planted defects
gate-audit: setup
	$(BIN)/qala gate-audit --days $(AUDIT_DAYS) --scale $(AUDIT_SCALE) --defect-rate $(AUDIT_DEFECTS)

# --- every reader fuzzed through the load path; the inputs of the findings kept in reports/fuzz/
fuzz: setup
	$(BIN)/qala fuzz --inputs $(FUZZ_INPUTS) --keep $(QALA_WAREHOUSE)/reports/fuzz $(if $(FUZZ_FORMATS),--formats $(FUZZ_FORMATS))

# --- SIGKILL at random instants in loads, replays, the dbt build and the scorecard; the work run again must
# end exactly as an undisturbed run; the warehouses that differ kept in reports/chaos/
chaos: setup browser
	$(BIN)/qala chaos --trials $(CHAOS_TRIALS) --airflow-trials $(CHAOS_AIRFLOW) --keep $(QALA_WAREHOUSE)/reports/chaos \
		$(if $(CHAOS_KINDS),--kinds $(CHAOS_KINDS))

# --- the KPIs against the simulator's planted effects (simulator/ground_truth.json): each expectation inside
# its 95% interval, and the KPIs the world keeps constant claiming a change no more often than 95% allows
.PHONY: effects
effects: setup
	$(BIN)/qala effects --warehouse $(QALA_WAREHOUSE)

# The whole suite, as CI runs it (about 30 minutes on 2 cores).
test: setup browser
	$(BIN)/pytest -q

# The fast tier: no Airflow, no dbt build, no browser (readers, row checks, gates and the load
# path on a real DuckLake, the simulator): a few minutes, for work on the load path.
test-fast: setup
	$(BIN)/pytest -q -m "not airflow and not dbt and not browser"
