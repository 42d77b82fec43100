# The two commands of the README. Each creates .venv on first use and installs the project into it; the
# stamp file is keyed on pyproject.toml and this Makefile, so a re-run with nothing changed skips set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
KEY := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(KEY)
DEMO_OUT ?= demo-out

.PHONY: demo test lint bench install clean

install: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	# A CPU build of this torch lies on these machines' disk; a bare "torch" may pull a CUDA build of several GB.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	# face_recognition declares dlib, which builds from source for ~10 minutes; dlib-bin (a dependency above)
	# ships the same module as a wheel, so install face_recognition without its declared dependencies.
	$(BIN)/python -m pip install -q --no-deps face_recognition==1.3.0
	@touch $@

demo: $(STAMP)
	$(BIN)/prep demo $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT)
