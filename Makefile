# Two commands do all the set-up from a fresh clone:
#   make demo   install everything into .venv, then serve the Gradio app on http://127.0.0.1:7860
#   make test   install everything into .venv, then lint, build the docs (broken links fail) and run the whole test suite
# `make test-fast` runs the suite without the slow and browser tests (a few minutes); `make lint` only ruff.
# Both create .venv (Python >= 3.10 from `python3`) on first use; later runs reuse it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_TOOLS := espeak-ng ffmpeg sox chromium
DEMO_PORT ?= 7860

# what the demo and the tests need: the core, the extras demo (gradio), eval (dlib, mir_eval), clap (laion-clap) and
# dev (pytest, ruff, mkdocs); `pip install avdiff` alone is the core (docs/installation.md)
EXTRAS := demo,eval,clap,dev
# every test run records its durations (the 25 slowest printed) and a JUnit XML under build/ (git-ignored)
RESULTS := build/test-results
PYTEST := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest --durations=25

.PHONY: install system-deps docs lint test test-fast demo bench proof bundle motion-model bundle-motion mouth-model bundle-mouth syncnet-model bundle-syncnet clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@test -x $(VENV)/bin/avdiff
	$(PY) -c "import sys, avdiff.audio.numba_cache as m; sys.exit(m.main())"  # librosa's numba kernels, compiled once
	@touch $(STAMP)

# System tools the tests use (speech synthesis, reference ffmpeg, chromium for the demo's browser tests). Installed
# with apt-get when running as root; otherwise a warning names what is missing.
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing system tools:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

# The documentation site (mkdocs.yml: docs/*.md and the API reference from the docstrings) into build/site, offline.
# --strict turns every warning into a failure: a broken link or anchor, a page missing from the nav, a docstring
# that names an object that is not there.
docs: install
	NO_MKDOCS_2_WARNING=1 HF_HUB_OFFLINE=1 $(PY) -m mkdocs build --strict

# ruff's lint rules and its formatter, checked only ([tool.ruff] in pyproject.toml); nothing is rewritten
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: install system-deps lint docs
	$(PYTEST) --junitxml=$(RESULTS)/junit.xml

# the suite without the slow and browser tests: every package's tests, in a few minutes on 2 cores
test-fast: install system-deps
	$(PYTEST) -m "not slow and not browser" --junitxml=$(RESULTS)/junit-fast.xml

# The Gradio app (avdiff demo): it prints its local URL; Ctrl+C stops it. Add your own trained models with
# `.venv/bin/avdiff demo --model mine=runs/talking_head_tiny/final`.
demo: install
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(VENV)/bin/avdiff demo --port $(DEMO_PORT)

bench: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/avdiff bench audio

# The talking-head lip-sync proof on unseen faces (docs/results.md): synthetic pairs drawn from the face pool (LFW
# faces and the astronaut, split by identity), the tiny lower-face model trained with and without audio side by side
# (one CPU thread each, about 90 minutes), then both scored on held-out identities and sentences against the
# baselines, lip sync and identity. Interrupted, it continues where it stopped (synth keeps its clips, training
# resumes from its last checkpoint). `make bundle` then copies the audio model into the package.
AVDIFF := HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/avdiff
proof: install system-deps
	$(AVDIFF) synth --dataset 160 --out data/faces
	$(AVDIFF) synth --dataset 16 --split test --seed 1 --out data/faces_test
	$(AVDIFF) train talking-head --config configs/train/talking_head_faces.yaml --data data/faces \
	  --eval-data data/faces_test --resume --no-progress & audio=$$!; \
	$(AVDIFF) train talking-head --config configs/train/talking_head_faces_noaudio.yaml --data data/faces \
	  --eval-data data/faces_test --resume --no-progress & control=$$!; \
	wait $$audio; a=$$?; wait $$control; c=$$?; test $$a -eq 0 && test $$c -eq 0
	$(AVDIFF) eval talking-head --data data/faces_test --out outputs/proof \
	  --model audio=runs/talking_head_faces/final --model no_audio=runs/talking_head_faces_noaudio/final --steps 20

# The shipped talking-head model (avdiff/bundled/talking-head-tiny): the proof's audio model and the run's config.
bundle: runs/talking_head_faces/final/model_index.json
	rm -rf avdiff/bundled/talking-head-tiny
	cp -r runs/talking_head_faces/final avdiff/bundled/talking-head-tiny
	cp runs/talking_head_faces/config.json avdiff/bundled/talking-head-tiny/training_config.json

# The motion generator (avdiff/bundled/talking-head-motion): trained on synthetic espeak-ng speech and its motion
# truth, no video (about 40 minutes on the 2-core CPU; interrupted, it resumes), then copied into the package with its
# config, beside the mouth painter already there (the folder's model_index.json, which names it, is kept).
motion-model: install system-deps
	$(AVDIFF) train talking-head-motion --config configs/train/talking_head_motion.yaml --resume --no-progress

bundle-motion: runs/talking_head_motion/final/model_index.json
	mkdir -p avdiff/bundled/talking-head-motion
	rm -rf avdiff/bundled/talking-head-motion/motion_model
	cp -r runs/talking_head_motion/final/motion_model avdiff/bundled/talking-head-motion/motion_model
	cp runs/talking_head_motion/config.json avdiff/bundled/talking-head-motion/training_config.json
	test -f avdiff/bundled/talking-head-motion/model_index.json || \
		cp runs/talking_head_motion/final/model_index.json avdiff/bundled/talking-head-motion/model_index.json

# the mouth painter, saved beside the bundled motion model (its pipeline folder's model_index.json names both)
mouth-model: install system-deps
	$(AVDIFF) train talking-head-mouth --config configs/train/talking_head_mouth.yaml --resume --no-progress

bundle-mouth: runs/talking_head_mouth/final/model_index.json
	rm -rf avdiff/bundled/talking-head-motion/mouth_painter
	cp -r runs/talking_head_mouth/final/mouth_painter avdiff/bundled/talking-head-motion/mouth_painter
	cp runs/talking_head_mouth/final/model_index.json avdiff/bundled/talking-head-motion/model_index.json
	cp runs/talking_head_mouth/config.json avdiff/bundled/talking-head-motion/mouth_painter/training_config.json

# The sync expert (avdiff/bundled/syncnet-motion): synthetic clips whose mouths follow the phonemes (about 2 minutes;
# synth keeps the clips it made), the SyncNet recipe (3.1 minutes on two threads), then copied into the package.
syncnet-model: install system-deps
	$(AVDIFF) synth --dataset 120 --split train --style motion --out data/synth_motion_train
	$(AVDIFF) synth --dataset 16 --split test --seed 1 --style motion --out data/synth_motion_test
	$(AVDIFF) train syncnet --config configs/train/syncnet_motion.yaml --resume --no-progress

bundle-syncnet: runs/syncnet_motion/final/syncnet_config.json
	rm -rf avdiff/bundled/syncnet-motion
	cp -r runs/syncnet_motion/final avdiff/bundled/syncnet-motion
	cp runs/syncnet_motion/config.json avdiff/bundled/syncnet-motion/run_config.json

clean:
	rm -rf $(VENV) outputs build *.egg-info .pytest_cache
