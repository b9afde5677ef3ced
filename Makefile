# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install app chromium clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,onnx,app]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dagan animate -o outputs/demo.mp4

# The browser tests need Debian's chromium: installed here when missing and we are root with apt-get.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || echo "chromium missing: the browser tests will fail (apt-get install -y chromium)"

test: $(STAMP) chromium
	$(PY) -m pytest -q -n 2 --dist loadfile

app: $(STAMP)
	$(VENV)/bin/dagan serve

clean:
	rm -rf $(VENV) outputs .pytest_cache
