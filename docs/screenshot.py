"""Take docs/demo.png, the README's screenshot of the app: the example (astronaut and espeak-ng speech) animated by
the default model (the bundled motion model), in headless chromium driven by playwright. It prints how long the
request took, from the click on Generate to the score on the page, for the first request and the next. The server
starts a worker as it starts, which takes about 25 s on the 2-core CPU to import and warm up (avdiff.demo.worker); a
first request sooner than that waits for it. ``--wait S`` clicks Generate S seconds after the page has shown the face
(which it does about 14 s after the start).

    python docs/screenshot.py [--chromium /usr/bin/chromium] [--wait 25]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from demo_server import CHROMIUM, CHROMIUM_ARGS, serving  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chromium", default=CHROMIUM)
    p.add_argument("--out", default=str(ROOT / "docs" / "demo.png"))
    p.add_argument("--width", type=int, default=900, help="width of the saved PNG, px")
    p.add_argument("--wait", type=float, default=0.0, help="seconds between the face shown and the first Generate")
    args = p.parse_args()

    from playwright.sync_api import sync_playwright

    from avdiff.demo import build_app

    with serving(build_app()) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator("#th-examples tbody tr").first.click()
        page.wait_for_function("document.querySelector('#th-face-info').innerText.includes('face found')")
        scored = "document.querySelector('#th-score').innerText.includes('frames with a face')"
        page.wait_for_timeout(1000 * args.wait)
        src = None
        for run in ("first", "second"):
            start = time.perf_counter()
            page.click("#th-generate")
            page.wait_for_function(
                f"(v => v && v.getAttribute('src') && v.getAttribute('src') !== {src!r})"
                "(document.querySelector('#th-video video'))".replace("None", "null")
            )
            page.wait_for_function(scored)
            src = page.get_attribute("#th-video video", "src")
            print(f"{run} request: {time.perf_counter() - start:.1f} s from Generate to the video and its score")
        print(page.inner_text("#th-score"))
        page.wait_for_selector("#th-motion-plot img")  # the motion's plot, drawn after the video
        page.evaluate("document.querySelector('#th-video video').currentTime = 1.0")
        page.wait_for_timeout(500)
        shot = page.screenshot(full_page=True)
        browser.close()
    im = Image.open(io.BytesIO(shot)).convert("RGB")
    im = im.resize((args.width, round(im.height * args.width / im.width)), Image.Resampling.LANCZOS)
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
