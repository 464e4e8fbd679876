# The two commands of the README. Each creates .venv and installs what is missing by itself.
# pip runs quietly (-q keeps errors and dependency conflicts visible); pyproject.toml is written so that
# setuptools has no deprecation or editable-install notes to print.
PY := .venv/bin/python
export OMP_WAIT_POLICY ?= PASSIVE
STAMP := .venv/.installed

.PHONY: demo test test-slow bench install docs

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Main job: trains on the shapes world and writes tables and figures under data/.
demo: $(STAMP)
	$(PY) -m gpsviz demo

# Tests: unit tests, notebooks in smoke mode, browser test of the widgets.
test: $(STAMP)
	bash scripts/test.sh

# Long reproductions (not part of `make test`).
test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

bench: $(STAMP)
	$(PY) -m gpsviz bench augment
	$(PY) -m gpsviz bench train
	$(PY) -m gpsviz bench knn

# The rendered gallery: every notebook executed (teach mode while 30 minutes allow, then smoke mode; DOCS_MODE=smoke
# for a 4-minute build, DOCS_MODE=teach for all) → site/index.html.
DOCS_MODE ?= auto
docs: $(STAMP)
	bash scripts/system-deps.sh
	$(PY) scripts/gallery.py --mode $(DOCS_MODE)
