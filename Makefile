# The two commands: `make demo` runs the product, `make test` passes the tests. Both create or
# reuse the virtual environment in .venv and install the project into it first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

CHECKOV := $(VENV)/tools/checkov/bin/checkov
CHECKOV_VERSION ?= 3.3.30

.PHONY: install demo test lint protos bench clean

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

demo: $(STAMP)
	$(VENV)/bin/withsense demo

# WITHSENSE_DEPLOY_TOOLS=required: a missing kubectl, checkov or hadolint fails the deploy tests.
test: $(STAMP) $(CHECKOV)
	$(PY) scripts/gen_protos.py --check
	$(VENV)/bin/ruff check .
	WITHSENSE_DEPLOY_TOOLS=required TRITON_INTERPRET=1 $(PY) -m pytest -q -ra

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

bench: $(STAMP)
	$(PY) benchmarks/bench_worker.py

clean:
	rm -rf $(VENV) .pytest_cache
