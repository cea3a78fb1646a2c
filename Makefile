# Two commands do all the set-up from a fresh clone:
#   make demo   install everything into .venv, then run the main job
#   make test   install everything into .venv, then run the whole test suite
# Both create .venv (Python >= 3.10 from `python3`) on first use; later runs reuse it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_TOOLS := espeak-ng ffmpeg sox

.PHONY: install system-deps test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@test -x $(VENV)/bin/avdiff
	@touch $(STAMP)

# System tools the tests use (speech synthesis, reference ffmpeg). Installed with apt-get when running as root;
# otherwise a warning names what is missing.
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing system tools:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

test: install system-deps
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest

demo: install
	HF_HUB_OFFLINE=1 $(PY) demos/beat_flash.py --out outputs/beat_flash.mp4

bench: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/avdiff bench audio

clean:
	rm -rf $(VENV) outputs build *.egg-info .pytest_cache
