"""The avdiff Gradio app, for people who run Gradio apps directly.

    python demos/app.py            # serves on http://127.0.0.1:7860 (the same as `avdiff demo`)
    gradio demos/app.py            # Gradio's reload mode: it finds `demo` below

`avdiff demo --model NAME=PATH` adds your own trained models; here, edit MODELS.
"""

from avdiff.demo import build_app, launch

MODELS: dict[str, str] = {}  # e.g. {"mine": "runs/talking_head_tiny/final"}

demo = build_app(models=MODELS)

if __name__ == "__main__":
    launch(demo, server_name="127.0.0.1", server_port=7860)
