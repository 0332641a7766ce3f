# `make test` and `make demo` set up .venv on first use, then reuse it (the stamp file is rebuilt
# only when setup.cfg or constraints.txt change).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: test demo bench install clean

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch and torchvision must match exactly (timm imports torchvision, easyeditor imports timm).
	$(PIP) install -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PIP) install -c constraints.txt -e ".[easyeditor,test]"
	# easyeditor's metadata pins versions that cannot install on Python 3.11: no deps.
	$(PIP) install --no-deps easyeditor==0.0.1.dev0
	$(BIN)/python -m easyedit_detox.bridge.check_install
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/easyedit-detox demo

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_edit.py
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
