# The two commands: `make demo` runs the product, `make test` passes the tests. Both create or
# reuse the virtual environment in .venv and install the project into it first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

CHECKOV := $(VENV)/tools/checkov/bin/checkov
CHECKOV_VERSION ?= 3.3.30

.PHONY: install demo test lint protos bench clean browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[worker,train,test,deploy]'
	touch $(STAMP)

# checkov in a virtualenv of its own: it pins networkx<2.7, scikit-image needs networkx>=3.
$(CHECKOV):
	python3 -m venv $(VENV)/tools/checkov
	$(VENV)/tools/checkov/bin/pip install -q 'checkov==$(CHECKOV_VERSION)'

install: $(STAMP)

# Indexes the built-in gallery, prints sample searches, then keeps serving the web page on
# http://127.0.0.1:8080/ (and gRPC on 50051) until Ctrl-C.
demo: $(STAMP)
	$(VENV)/bin/withsense demo --serve

# The browser test drives Debian's chromium (never a downloaded browser). Installed with apt when
# missing and we may (root, apt present); otherwise tests/web/test_browser.py skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			>/dev/null) || echo "chromium could not be installed: the browser test will skip"; \
	else echo "no chromium and no root apt-get: the browser test will skip"; fi

# WITHSENSE_DEPLOY_TOOLS=required: a missing kubectl, checkov or hadolint fails the deploy tests.
# Two pytest-xdist workers: many tests wait on servers they start, so two keep both cores busy
# (12.4 -> 8.8 min on 2 cores); --dist loadfile keeps each file's tests on one worker (its
# module fixtures start once). PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= 2
test: $(STAMP) $(CHECKOV) browser
	$(PY) scripts/gen_protos.py --check
	$(VENV)/bin/ruff check .
	WITHSENSE_DEPLOY_TOOLS=required TRITON_INTERPRET=1 $(PY) -m pytest -q -ra -n $(PYTEST_WORKERS) --dist loadfile

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

bench: $(STAMP)
	$(PY) benchmarks/bench_worker.py

clean:
	rm -rf $(VENV) .pytest_cache
