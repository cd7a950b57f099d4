# genlab - run `make help` for the targets.
# Only python3 (3.11) and make are needed: everything else is bootstrapped into .venv.

PROFILE ?= cpu
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.genlab-installed
PDF_PKGS := texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc fonts-dejavu-core
ARGS    ?=

.DEFAULT_GOAL := help
.PHONY: help report test lab bench data clean venv pdf-deps

help: ## list the targets
	@echo "genlab - make TARGET [PROFILE=smoke|cpu|gpu]"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 14
	@echo "  profiles: smoke (seconds, tests/CI), cpu (default, ~59-64 min cold on 2 AMD EPYC cores of CPU family 26, installs included, ~1.6x (~100 min) on CPU family 25; warm: ~1.2 min, nothing retrains), gpu (full quality)"
	@echo "  extra builder options: make report ARGS='--notebooks flows --no-pdf -p name=value'"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

venv: $(STAMP) ## create .venv with the pinned dependencies (done once; the other targets call it)

pdf-deps: ## install the Debian packages that PDF export needs, when missing
	@if command -v xelatex >/dev/null && command -v pandoc >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(PDF_PKGS) for PDF export (about a minute) ..."; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PDF_PKGS) >/dev/null) \
		|| echo "note: could not install $(PDF_PKGS); reports will be HTML only"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(PDF_PKGS) >/dev/null \
		|| echo "note: could not install $(PDF_PKGS); reports will be HTML only"; \
	else \
		echo "note: for PDF reports install $(PDF_PKGS) (Debian/Ubuntu names); building HTML only"; \
	fi

report: $(STAMP) ## build all reports into reports/ (PROFILE=smoke|cpu|gpu, default cpu)
	@-$(MAKE) --no-print-directory pdf-deps
	$(PY) -m genlab.build --profile $(PROFILE) $(ARGS)

test: $(STAMP) ## run the test suite (CI runs this); finds (or, online, downloads) the datasets first
	$(PY) -m genlab.download
	$(PY) -m pytest -q $(ARGS)

lab: $(STAMP) ## open Jupyter Lab on notebooks/ with genlab importable
	$(PY) -m jupyter lab --notebook-dir=notebooks $(ARGS)

bench: $(STAMP) ## measure training speed: images/s per model family in fp32, bf16, channels_last, on all threads and on one; machine rates; data pipeline
	$(PY) -m genlab.bench $(ARGS)

data: $(STAMP) ## find the datasets (download the missing ones when online) and verify their checksums
	$(PY) -m genlab.download $(ARGS)

clean: ## remove built reports and trained-model cache (keeps .venv and data)
	rm -rf reports/*.html reports/*.pdf reports/*.ipynb reports/*.json reports/samples reports/failed reports/lab reports/.staging-* cache
