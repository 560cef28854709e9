# The two commands of this repository (see README.md):
#   make reproduce   synthetic data -> train -> evaluate -> results/ and figures/
#   make test        unit tests + every notebook run top to bottom under nbval
# and the ablation grid behind notebooks 06/07: make ablation (hours; its results are committed)
# Both create .venv and install the project into it when it is missing.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
# TORCH=system (any target): keep the torch that $(PYTHON) already has instead of the pinned wheel, whose CUDA
# build needs a recent driver (a cluster's may be older). The venv then sees the system's site-packages and
# the rest installs under constraints that pin torch (and torchvision) to the versions there (reid/install.py).
# Start from a venv without a torch of its own: one made before without TORCH=system is refused; a venv is one
# kind or the other, so switching TORCH removes the other kind's stamp and rebuilds it (or refuses).
TORCH    ?= pinned
ifeq ($(TORCH),system)
STAMP    := $(VENV)/.installed-system-torch
OTHER_STAMP := $(VENV)/.installed
CONSTRAINTS := $(VENV)/constraints-system-torch.txt
VENV_FLAGS := --system-site-packages
else
STAMP    := $(VENV)/.installed
OTHER_STAMP := $(VENV)/.installed-system-torch
CONSTRAINTS := constraints.txt
VENV_FLAGS :=
endif
# DATA: the folder that holds SYSU-MM01/ and/or RegDB/, for reproduce and ablation alike (a dataset's own
# folder is accepted for that dataset; docs/sweeps.md, "Data"). Empty: the synthetic set.
DATA     ?=
DATASET  ?=
PROFILE  ?= smoke
PRETRAINED ?=

.PHONY: reproduce calibrate ablation test install lab lab-student notebooks lint bench gpu-check gpu-check-run clean

$(STAMP): pyproject.toml constraints.txt
ifeq ($(TORCH),system)
	if [ -x $(PY) ]; then $(PY) reid/install.py --check-system-torch; fi
endif
	rm -f $(OTHER_STAMP)
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
ifeq ($(TORCH),system)
	$(PYTHON) reid/install.py --system-torch-constraints > $(CONSTRAINTS)
endif
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
ifeq ($(TORCH),system)
	$(PY) reid/install.py --check-system-torch
endif
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
# ruff first (the code and the notebooks, seconds): a lint finding fails before the long run starts.
# Two pytest processes side by side, one core each (every test and notebook uses one torch thread): the
# notebooks (in order: 04 reuses the run 03 trains) then tests/test_sweep.py, whose sweeps start jobs of their
# own (measured alone: notebooks 89-102 s + test_sweep 299 s beside the other tests' 265 s); the background
# one's report follows the tests' when both have ended.
TEST_ENV := REID_STEPS_CAP=25 REID_SEEDS=0 REID_MISSING=train REID_OUTPUT_DIR=runs/make-test
BESIDE := tests/test_sweep.py
test: $(STAMP)
	$(MAKE) --no-print-directory lint
	@mkdir -p runs/make-test
	@$(TEST_ENV) OMP_NUM_THREADS=1 $(PY) -m pytest notebooks $(BESIDE) --nbval-lax --nbval-current-env -p no:cacheprovider \
	  > runs/make-test/notebooks.log 2>&1 & notebooks=$$!; trap "kill $$notebooks 2>/dev/null" INT TERM; \
	$(TEST_ENV) $(PY) -m pytest tests --ignore $(BESIDE) -p no:cacheprovider; tests=$$?; \
	wait $$notebooks; nbval=$$?; echo "== notebooks (nbval) and $(BESIDE), run beside the tests:"; \
	cat runs/make-test/notebooks.log; test $$tests -eq 0 && test $$nbval -eq 0

# Bound to this machine only; --allow-root because JupyterLab refuses root (the usual user in a container).
LAB_PORT ?= 8888
lab: $(STAMP)
	@$(PY) -c "import socket, sys; s = socket.socket(); taken = s.connect_ex(('127.0.0.1', $(LAB_PORT))) == 0; s.close(); sys.exit('make lab: port $(LAB_PORT) on 127.0.0.1 is taken (another Jupyter?): stop it, or choose a free one: make lab LAB_PORT=8890' if taken else 0)"
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev,lab]"
	@echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab (the token is in the URL printed below)"
	$(VENV)/bin/jupyter lab notebooks/ --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 --no-browser \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

# The student lab (notebooks/README.md, "The course"): JupyterLab rooted at notebooks/clean/, so the answers, the
# originals with their outputs and the helper scripts are out of reach, in its own venv with the project and
# the lab extra only (no test or lint tools). The copies' first cell finds this repository two folders up.
STUDENT_VENV ?= .venv-student
STUDENT_STAMP := $(STUDENT_VENV)/.installed
$(STUDENT_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(STUDENT_VENV)
	$(STUDENT_VENV)/bin/python -m pip install --upgrade --quiet pip
	$(STUDENT_VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[lab]"
	touch $(STUDENT_STAMP)

lab-student: $(STUDENT_STAMP)
	@$(STUDENT_VENV)/bin/python -c "import socket, sys; s = socket.socket(); taken = s.connect_ex(('127.0.0.1', $(LAB_PORT))) == 0; s.close(); sys.exit('make lab-student: port $(LAB_PORT) on 127.0.0.1 is taken (another Jupyter?): stop it, or choose a free one: make lab-student LAB_PORT=8890' if taken else 0)"
	@echo "JupyterLab (student copies only): http://127.0.0.1:$(LAB_PORT)/lab (the token is in the URL printed below)"
	$(STUDENT_VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks/clean --ip=127.0.0.1 --port=$(LAB_PORT) \
	  --ServerApp.port_retries=0 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# Re-execute every notebook in place, refreshing the committed outputs and figures/.
notebooks: $(STAMP)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev,lab]"
	for nb in notebooks/[0-9]*.ipynb; do echo "== $$nb"; start=$$(date +%s); \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1200 "$$nb" || exit 1; \
	  echo "   $$nb: $$(( $$(date +%s) - start )) s"; done
	$(PY) notebooks/clean_outputs.py notebooks/[0-9]*.ipynb
	$(PY) notebooks/student_copies.py

# The notebooks too (ruff reads .ipynb); not the student copies, which are made from them (notebooks/clean/:
# a blanked '# fill in' value leaves its import unused on purpose).
lint: $(STAMP)
	$(VENV)/bin/ruff check reid tests benchmarks notebooks

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The GPU check of issue 20 (benchmarks/gpu_check.py) -> results/gpu.md, in parts sized to take under 5 minutes
# each on one H100/H200 (issue 33; the report flags a part that takes longer): PART=data (the real-scale synthetic SYSU-MM01, one render process per CPU), bench (model
# speed at presets 9/18/base), loader (one loader-fed epoch on that set), resume (kill + resume on CUDA), eval
# (evaluation and Grad-CAM on CUDA, the loader's model); comma-separated for several, none for all in order.
# Where no NVIDIA GPU is visible it says so in one line and stops before anything is installed or written. OFFLINE=1: no venv, the machine's own python3 and its packages (a GPU
# machine that cannot reach a package index but holds torch, timm and the rest).
GPU_DEPS := $(if $(OFFLINE),,$(STAMP))
GPU_PY   := $(if $(OFFLINE),$(PYTHON),$(PY))
gpu-check:
	@nvidia-smi -L >/dev/null 2>&1 || { echo "gpu-check: no NVIDIA GPU on this machine (nvidia-smi lists none): nothing run, nothing written" >&2; exit 1; }
	@$(MAKE) --no-print-directory gpu-check-run

gpu-check-run: $(GPU_DEPS)
	PYTHONPATH=. $(GPU_PY) benchmarks/gpu_check.py $(if $(PART),--part $(PART))

clean:
	rm -rf data runs .pytest_cache
