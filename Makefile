# Two commands on a fresh machine: `make run` (the chat) and `make test` (the tests).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install run index test test-fast lint bench eval screenshot clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/assistant serve

index: install
	$(VENV)/bin/assistant index

# The fast tier: no model, no server, no browser (the stand-ins of assistant/embeddings/fake.py and
# tests/fakes.py); indexing, fusion, the answer policy, evaluation and the UI's handlers. Under 20 s.
# hypothesis's pytest plugin is left out: it imports hypothesis at start (2.4 s) and only the slow fuzz tests use it.
test-fast: install
	$(PY) -m pytest -q -p no:hypothesispytest -m "not slow and not browser"

# Everything (what CI runs): ruff, the whole test suite with the slow and browser tiers (pytest exits 5
# when no test ran: make fails on it like on any failure), then the regression gates, one process, one
# thresholds file per set: the evaluation set on the shipped corpus and the committed slices of the
# external dev sets (eval/external: documents nobody here wrote).
test: install
	sh scripts/ensure-chromium.sh
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
	$(VENV)/bin/assistant eval --set eval --thresholds eval/thresholds.json \
	  --set swequad-dev-slice --thresholds eval/thresholds-swequad-dev-slice.json \
	  --set squad-dev-slice --thresholds eval/thresholds-squad-dev-slice.json \
	  --set swefaq-dev-slice --thresholds eval/thresholds-swefaq-dev-slice.json

lint: install
	$(VENV)/bin/ruff check .

eval: install
	$(VENV)/bin/assistant eval

# retrieval quality and speed per method, then the inference engines (cold ask, serve, RSS, embedding,
# relevance model, ask p50/p95); both want 2 otherwise idle cores
bench: install
	$(PY) benchmarks/run.py
	$(PY) benchmarks/lean.py

# the README's picture: the chat over the shipped corpus in Debian chromium (after a change that shows)
screenshot: install
	sh scripts/ensure-chromium.sh
	$(PY) scripts/screenshot.py

clean:
	rm -rf $(VENV) index/gen-* index/CURRENT
