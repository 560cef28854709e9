# The two commands of this repository (see README.md):
#   make reproduce   synthetic data -> train -> evaluate -> results/ and figures/
#   make test        unit tests + every notebook run top to bottom under nbval
# and the ablation grid behind notebooks 05/06: make ablation (hours; its results are committed)
# Both create .venv and install the project into it when it is missing.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
DATA     ?=
DATASET  ?=
PROFILE  ?= smoke
PRETRAINED ?=

.PHONY: reproduce ablation test install lab notebooks lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(PY) -m reid reproduce --profile $(PROFILE) $(if $(DATA),--data $(DATA)) $(if $(DATASET),--dataset $(DATASET)) \
	  $(if $(PRETRAINED),--set model.pretrained=$(PRETRAINED))

# Tables 3 and 4 and the budget curve at the profile's full budget: every row and seed as its own
# single-thread job, JOBS at a time (about 5 hours on 2 CPU cores); notebooks 05/06 then read the results.
JOBS ?= 2
ablation: $(STAMP)
	for grid in table3 table4 budget budget_long; do \
	  $(PY) -m reid sweep --grid $$grid --profile $(PROFILE) --jobs $(JOBS) $(if $(DATA),--data $(DATA)) || exit 1; done

# The notebooks run at a test budget (REID_STEPS_CAP steps per epoch, one seed): this checks that they run top
# to bottom, not their numbers; their results and figures go to runs/make-test/, never over the committed ones.
test: $(STAMP)
	REID_STEPS_CAP=25 REID_SEEDS=0 REID_OUTPUT_DIR=runs/make-test \
	  $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

lab: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,lab]"
	$(VENV)/bin/jupyter lab notebooks/

# Re-execute every notebook in place, refreshing the committed outputs and figures/.
notebooks: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,lab]"
	for nb in notebooks/[0-9]*.ipynb; do echo "== $$nb"; start=$$(date +%s); \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1200 "$$nb" || exit 1; \
	  echo "   $$nb: $$(( $$(date +%s) - start )) s"; done
	$(PY) notebooks/clean_outputs.py notebooks/[0-9]*.ipynb

lint: $(STAMP)
	$(VENV)/bin/ruff check reid tests benchmarks

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf data runs .pytest_cache
