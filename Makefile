# msgnn-lite: two commands do all the set-up.
#   make reproduce   execute every notebook with papermill (default profile) -> runs/default/
#                    (DEVICE=cuda passes the device to every notebook; ONLY=NN runs one)
#   make test        unit tests + nbval over the stored notebooks
#   make site        the course website from the stored notebooks -> site/_build/html/
# Each creates .venv and installs what it needs first.
#
# TORCH_SPEC pins torch so that a CPU machine takes the CPU wheel. For a CUDA build,
# override it, e.g.  make install TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url <your CUDA index>"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PROFILE ?= default
ONLY ?=
DEVICE ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.msgnn-installed

.PHONY: install test unit nbval reproduce notebooks bench classroom site clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(PY) -m pip install -q -e ".[notebooks,test,site]"
	touch $(STAMP)

## The test command (CI runs exactly this): unit tests and nbval, in one pytest run.
test: install
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider --durations=20

unit: install
	$(PY) -m pytest tests

## The main job: execute every notebook (writes runs/$(PROFILE)/ and figures/).
reproduce: install
	$(PY) -m msgnn_lite.run_notebooks --profile $(PROFILE) $(if $(ONLY),--only $(ONLY)) $(if $(DEVICE),--device $(DEVICE))

## Re-execute the notebooks in place, refreshing their stored default-profile outputs.
notebooks: install
	$(PY) -m msgnn_lite.run_notebooks --store $(if $(ONLY),--only $(ONLY))

## Student copies of the notebooks (solutions replaced by scaffolds) -> classroom/student/
classroom: install
	$(PY) -m msgnn_lite.classroom $(if $(ONLY),--only $(ONLY))

## The course website: stored notebooks, guide, report and API reference (warnings are errors).
site: install
	$(PY) site/build.py

bench: install
	$(PY) -m msgnn_lite.bench propagate

clean:
	rm -rf runs .pytest_cache site/_build docs/api
