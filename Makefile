# The two commands of this repository (see README.md):
#   make reproduce   synthetic data -> train -> evaluate -> results/ and figures/
#   make test        unit tests + every notebook run top to bottom under nbval
# and the ablation grid behind notebooks 06/07: make ablation (hours; its results are committed)
# Both create .venv and install the project into it when it is missing.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
DATA     ?=
DATASET  ?=
PROFILE  ?= smoke
PRETRAINED ?=

.PHONY: reproduce calibrate ablation test install lab notebooks lint bench gpu-check gpu-check-run clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(PY) -m reid reproduce --profile $(PROFILE) $(if $(DATA),--data $(DATA)) $(if $(DATASET),--dataset $(DATASET)) \
	  $(if $(PRETRAINED),--set model.pretrained=$(PRETRAINED))

# AGW, the calibration baseline (docs/agw.md): trained and evaluated here, printed beside its published numbers.
# make calibrate DATA=/data/SYSU-MM01 PRETRAINED=torchvision [DATASET=regdb]: AGW's own settings (a GPU);
# PROFILE=smoke on the command line: the CPU variant (micro ResNet, 96x48; synthetic set without DATA).
calibrate: $(STAMP)
	$(PY) -m reid calibrate $(if $(DATA),--data $(DATA)) $(if $(DATASET),--dataset $(DATASET)) \
	  $(if $(filter command line,$(origin PROFILE)),--profile $(PROFILE)) \
	  $(if $(PRETRAINED),--set model.pretrained=$(PRETRAINED))

# Tables 3 and 4 and the budget curve at the profile's full budget: every row and seed as its own
# single-thread job, JOBS at a time (about 5 hours on 2 CPU cores); notebooks 06/07 then read the results.
JOBS ?= 2
# Every grid is checked (--check: nothing trained) before the first one trains: a bad grid fails in seconds.
ABLATION_GRIDS := table3 table4 budget budget_long
ablation: $(STAMP)
	for grid in $(ABLATION_GRIDS); do \
	  $(PY) -m reid sweep --grid $$grid --profile $(PROFILE) $(if $(DATA),--data $(DATA)) --check || exit 1; done
	for grid in $(ABLATION_GRIDS); do \
	  $(PY) -m reid sweep --grid $$grid --profile $(PROFILE) --jobs $(JOBS) $(if $(DATA),--data $(DATA)) || exit 1; done

# The notebooks run at a test budget (REID_STEPS_CAP steps per epoch, one seed): this checks that they run top
# to bottom, not their numbers; their results and figures go to runs/make-test/, never over the committed ones.
test: $(STAMP)
	REID_STEPS_CAP=25 REID_SEEDS=0 REID_OUTPUT_DIR=runs/make-test \
	  $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# Bound to this machine only; --allow-root because JupyterLab refuses root (the usual user in a container).
LAB_PORT ?= 8888
lab: $(STAMP)
	@$(PY) -c "import socket, sys; s = socket.socket(); taken = s.connect_ex(('127.0.0.1', $(LAB_PORT))) == 0; s.close(); sys.exit('make lab: port $(LAB_PORT) on 127.0.0.1 is taken (another Jupyter?): stop it, or choose a free one: make lab LAB_PORT=8890' if taken else 0)"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,lab]"
	@echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab (the token is in the URL printed below)"
	$(VENV)/bin/jupyter lab notebooks/ --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 --no-browser \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# Re-execute every notebook in place, refreshing the committed outputs and figures/.
notebooks: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,lab]"
	for nb in notebooks/[0-9]*.ipynb; do echo "== $$nb"; start=$$(date +%s); \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1200 "$$nb" || exit 1; \
	  echo "   $$nb: $$(( $$(date +%s) - start )) s"; done
	$(PY) notebooks/clean_outputs.py notebooks/[0-9]*.ipynb
	$(PY) notebooks/student_copies.py

lint: $(STAMP)
	$(VENV)/bin/ruff check reid tests benchmarks

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The GPU check of issue 20 (benchmarks/gpu_check.py, under 8 minutes on one H100/H200): model speed at presets
# 9/18/base, one loader-fed epoch on a real-scale synthetic SYSU-MM01, kill + resume on CUDA, evaluation and
# Grad-CAM on CUDA -> results/gpu.md. Where no NVIDIA GPU is visible it says so in one line and stops before
# anything is installed or written. OFFLINE=1: no venv, the machine's own python3 and its packages (a GPU
# machine that cannot reach a package index but holds torch, timm and the rest).
GPU_DEPS := $(if $(OFFLINE),,$(STAMP))
GPU_PY   := $(if $(OFFLINE),$(PYTHON),$(PY))
gpu-check:
	@nvidia-smi -L >/dev/null 2>&1 || { echo "gpu-check: no NVIDIA GPU on this machine (nvidia-smi lists none): nothing run, nothing written" >&2; exit 1; }
	@$(MAKE) --no-print-directory gpu-check-run

gpu-check-run: $(GPU_DEPS)
	PYTHONPATH=. $(GPU_PY) benchmarks/gpu_check.py

clean:
	rm -rf data runs .pytest_cache
