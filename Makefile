# Tollgate: `make demo` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := data/generated/demo
DEMO_INVOICES ?= 2000
export TOLLGATE_DATA_DIR ?= $(CURDIR)/data/generated

.PHONY: help install test lint pytest demo demo-world eval serve bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: pip finds the CPU build on this machine; nothing may pull CUDA.
	$(BIN)/pip install -qq -c constraints.txt torch==2.13.0
	$(BIN)/pip install -qq -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install pinned dependencies (idempotent)

lint: $(STAMP)  ## ruff, mypy, import contracts, migrations in step with the tables
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app review_ui governance pipelines training models
	$(BIN)/lint-imports
	$(BIN)/python -m app.db.check_migrations

pytest: $(STAMP)  ## the test suite only
	$(BIN)/python -m pytest -q

test: lint pytest  ## install, lint and run the whole suite

demo-world: $(STAMP)  ## generate a synthetic world (DEMO_INVOICES=2000), train, load, ingest (scored)
	$(BIN)/tollgate generate --invoices $(DEMO_INVOICES) --seed 7 --out $(DEMO_DIR) --report
	# Models first, registered in the local MLflow store as challengers, so that ingest scores
	# every case; the reason family learns from the rules' findings, which eval match writes.
	$(BIN)/tollgate eval match --world $(DEMO_DIR) --findings-out $(DEMO_DIR)/findings.jsonl
	$(BIN)/tollgate train all --world $(DEMO_DIR) --cards-dir $(DEMO_DIR)/model_cards --trained-by mia
	$(BIN)/tollgate load-master-data $(DEMO_DIR)/master
	$(BIN)/tollgate ingest $(DEMO_DIR)/documents/ubl || test $$? -eq 2
	$(BIN)/tollgate load-master-data $(DEMO_DIR)/late_receipts
	# Demo people (password "tollgate-demo"): a clerk, two approvers, a controller, an ML engineer.
	TOLLGATE_DEMO_PASSWORD=tollgate-demo $(BIN)/tollgate users add clara --role clerk \
	  --name "Clara Clerk" --password-env TOLLGATE_DEMO_PASSWORD --exists-ok
	TOLLGATE_DEMO_PASSWORD=tollgate-demo $(BIN)/tollgate users add anna --role approver \
	  --name "Anna Approver" --limit 50000 --password-env TOLLGATE_DEMO_PASSWORD --exists-ok
	TOLLGATE_DEMO_PASSWORD=tollgate-demo $(BIN)/tollgate users add ben --role approver \
	  --name "Ben Approver" --limit 50000 --password-env TOLLGATE_DEMO_PASSWORD --exists-ok
	TOLLGATE_DEMO_PASSWORD=tollgate-demo $(BIN)/tollgate users add carl --role controller \
	  --name "Carl Controller" --password-env TOLLGATE_DEMO_PASSWORD --exists-ok
	TOLLGATE_DEMO_PASSWORD=tollgate-demo $(BIN)/tollgate users add mia --role ml_engineer \
	  --name "Mia ML" --password-env TOLLGATE_DEMO_PASSWORD --exists-ok
	# A key for other systems (shown once; kept in the demo folder for the demo only).
	$(BIN)/tollgate api-keys create --name demo-erp --scopes score,cases:read,documents:write \
	  > $(DEMO_DIR)/api-key.txt
	# A promotion request waiting for a controller (carl) at /review/promotions.
	$(BIN)/tollgate models promote reason --version 1 --by mia || true

demo: demo-world  ## install, build a demo world and serve on http://127.0.0.1:8000
	TOLLGATE_WORKER_IN_PROCESS=true $(BIN)/tollgate serve --host 127.0.0.1 --port 8000

serve: $(STAMP)  ## serve whatever the database holds
	$(BIN)/tollgate serve

eval: $(STAMP)  ## score the rules on a fresh 10,000-invoice world (seed 7); exit 1 below the bar
	$(BIN)/tollgate generate --invoices 10000 --seed 7 --out data/generated/eval-world --no-pdf
	$(BIN)/tollgate eval match --world data/generated/eval-world

bench: $(STAMP)  ## run the benchmarks (they print figures)
	$(BIN)/python bench/ingest_ubl.py --n 1000
	$(BIN)/python bench/generate_world.py --invoices 10000 --runs 3
	$(BIN)/python bench/render_pdf.py
	$(BIN)/python bench/parse_sandbox.py

clean:  ## remove generated data (keeps .venv)
	rm -rf data/generated
