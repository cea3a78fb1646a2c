"""``avdiff demo``: serve the Gradio app on localhost.

Every ``--model NAME=PATH`` folder is checked before the server starts (a saved pipeline, e.g. ``avdiff train
talking-head`` or ``avdiff train text-to-video`` output) and loaded on first use.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import threading

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="serve the Gradio app (talking heads, music videos, scenes) on localhost",
        description="Serve the Gradio app: a face photo and speech give a talking-head video with its "
        "lip-sync score; a song and images or prompts give a music video on the beats; a prompt and "
        "sounds give an audio-aligned scene. Ctrl+C stops it.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a saved talking-head or text-to-video pipeline folder to offer (in the tab of its job), e.g. "
        "mine=runs/talking_head_tiny/final (repeatable)",
    )
    p.add_argument("--max-audio-s", type=float, default=60.0, help="longest audio accepted, seconds (default 60)")
    p.add_argument("--device", default=None, help="torch device of the models (default: cuda when available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avdiff.commands import CommandError
    from avdiff.demo.models import ModelSpecError, parse_model_specs

    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be in 1..65535, got {args.port}")
    if not args.max_audio_s > 0:
        raise CommandError(f"--max-audio-s must be > 0 seconds, got {args.max_audio_s}")
    try:
        models = parse_model_specs(args.model)
        from avdiff.demo import build_app, launch, shutdown

        app = build_app(models=models, max_audio_s=args.max_audio_s, device=args.device)
    except ModelSpecError as e:
        raise CommandError(str(e)) from e
    try:
        launch(app, server_name=args.host, server_port=args.port, prevent_thread_lock=True)
    except OSError as e:
        logger.debug("launch failed: %s", e)
        raise CommandError(
            f"cannot serve on {args.host}:{args.port} (the port is in use, or the address is not this "
            "machine's); choose another --port or --host"
        ) from e
    print(f"avdiff demo: serving on {app.local_url} (Ctrl+C stops it)", flush=True)
    # Ctrl+C and SIGTERM (`kill`, systemd, docker stop) only set a flag that the loop below reads: raised as
    # KeyboardInterrupt inside the server's own code, a signal could be swallowed there and the server never stop.
    # A second Ctrl+C, while the stop is under way, interrupts it.
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    # `kill -USR1 PID` prints every thread's stack to stderr: what a server that does not stop is waiting on
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        while app.is_running and not stop.wait(0.1):
            pass
        if stop.is_set():
            print("avdiff demo: stopping: the running jobs end and their files are removed", flush=True)
    finally:
        shutdown(app)
    return 0
