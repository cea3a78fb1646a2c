"""The demo's music tab in a real browser: Python playwright drives Debian's headless chromium against the app (the
music tab alone) served in this process, as ``test_demo_browser.py`` does for the talking-head tab. The song is a
generated 128 BPM drum track (6 s) whose beat times are known; the keyframes are three 64 px pictures. Screenshots go
to outputs/test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avdiff.audio.io import save_audio
from avdiff.audio.synth import drum_track
from avdiff.bench.visualize import make_keyframes
from avdiff.demo import build_app
from avdiff.demo.tabs import MusicTab
from avdiff.video import read_video

from demo_server import chromium_skip_reason, download, open_page, serving, set_slider

_skip = chromium_skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(_skip is not None, reason=_skip or "")]

SONG_S = 6.0
BPM = 128.0
BEAT_S = 60.0 / BPM
FPS = 25
BEATS_PER_INTERVAL = 4
ROWS_JS = """rows => rows.map(r => [...r.querySelectorAll('[role=gridcell]')]
                    .map(c => c.querySelector('span[data-editable]').innerText.trim()))"""


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """``(song.wav, its true beat times in s, [astronaut, coffee, chelsea] 64 px PNGs)``."""
    folder = tmp_path_factory.mktemp("music_browser")
    track = drum_track(BPM, duration_s=SONG_S, sample_rate=22050, accent=0.5)
    song = save_audio(folder / "song.wav", track.waveform)
    return song, np.asarray(track.beat_times_s), make_keyframes(folder / "keys", 64)


@pytest.fixture(scope="module")
def url():
    with serving(build_app(bundled=False, tabs=[MusicTab])) as url:
        yield url


@pytest.fixture
def page(browser, url, request):
    with open_page(browser, url, "#mv-plan", request.node.name) as page:
        yield page


def plan(page, song: Path, keys: list[Path]) -> list[list[str]]:
    """Upload the song and the images, plan 4 beats per interval at 64 px; the table's rows as shown (text)."""
    page.locator("#mv-song input[type=file]").set_input_files(str(song))
    page.locator("#mv-images input[type=file]").set_input_files([str(k) for k in keys])
    set_slider(page, "mv-beats", BEATS_PER_INTERVAL)
    set_slider(page, "mv-height", 64)
    page.click("#mv-plan")
    page.wait_for_function("document.querySelector('#mv-info').innerText.includes('BPM')")
    return table(page)


def table(page) -> list[list[str]]:
    return page.eval_on_selector_all("#mv-table .virtual-row", ROWS_JS)


def edit_cell(page, row: int, col: int, text: str) -> None:
    """Type ``text`` into a cell as a user does: select it, Enter to edit, type, Enter to commit."""
    cell = page.locator(f"#mv-table [data-testid=cell-{row}-{col}]")
    cell.click()
    cell.press("Enter")
    editor = cell.locator("textarea")
    editor.fill(text)
    editor.press("Enter")
    page.wait_for_function(
        f"document.querySelector('#mv-table [data-testid=cell-{row}-{col}] span[data-editable]')"
        f".innerText.trim() === {text!r}"
    )


def render(page) -> str:
    """Click Render; the served video's URL once the video element shows it."""
    page.click("#mv-render")
    return page.wait_for_selector("#mv-video video[src]").get_attribute("src")


def error_toast(page, pattern: str) -> str:
    """The text of the error toast whose sentence matches ``pattern`` (a regex), once it shows."""
    toast = page.locator(".toast-body").filter(has_text=re.compile(pattern))
    toast.wait_for()
    assert "Traceback" not in page.inner_text("body")
    return toast.inner_text()


def nearest(frame: np.ndarray, keys: list[Path]) -> tuple[int, list[float]]:
    """The index of the keyframe picture nearest ``frame`` (mean absolute difference), and every distance."""
    d = [
        float(np.abs(frame.astype(np.float32) - np.asarray(Image.open(k).convert("RGB"), np.float32)).mean())
        for k in keys
    ]
    return int(np.argmin(d)), d


def test_plan_lays_the_images_on_the_beats_and_plots_the_curve_before_rendering(page, media, tmp_path):
    song, beats, keys = media
    assert table(page) == [] or all(c == "" for row in table(page) for c in row)  # nothing planned yet
    rows = plan(page, song, keys)

    assert page.inner_text("#mv-info").startswith("128.0 BPM")
    assert len(rows) == 3, rows  # 6 s of 4-beat intervals (1.875 s): the 0.5 s lead-in joins the first
    starts, ends = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
    assert starts[0] == 0 and ends[-1] == SONG_S and starts[1:] == ends[:-1]
    edges = np.asarray(ends[:-1])  # where one interval hands over to the next: on the song's beats...
    on_beat = np.abs(edges[:, None] - beats[None]).min(axis=1)
    assert np.all(on_beat <= 0.03), (edges, on_beat)  # within librosa's hop (23 ms)
    beat_index = np.rint((edges - beats[0]) / BEAT_S).astype(int)  # ...every 4th beat, from the first one
    assert beat_index.tolist() == [4, 8], edges
    names = [k.name for k in keys]  # the images in order, each interval ending on the next one's start
    assert [(r[2], r[3], r[4]) for r in rows] == [
        (f"image:{names[i]}", f"image:{names[(i + 1) % 3]}", "subject") for i in range(3)
    ]

    beats_plot = shown_plot(page, tmp_path / "beats.png")
    assert page.locator("#mv-video video").count() == 0  # shown before anything is rendered

    page.click("#mv-curve input")  # the plot is of the chosen curve: another curve, another picture
    page.get_by_role("option", name="linear").click()
    old_src = page.get_attribute("#mv-plot img", "src")
    page.click("#mv-plan")
    page.wait_for_function(f"document.querySelector('#mv-plot img').src !== {old_src!r}")
    linear_plot = shown_plot(page, tmp_path / "linear.png")
    assert beats_plot.shape == linear_plot.shape and np.abs(beats_plot - linear_plot).mean() > 1


def shown_plot(page, path: Path) -> np.ndarray:
    """The curve's plot once the browser has loaded it (visible, decoded), as served: float32 [H, W, 3]."""
    page.wait_for_function(
        "(img => img && img.complete && img.naturalWidth > 0)(document.querySelector('#mv-plot img'))"
    )
    assert page.is_visible("#mv-plot img")
    return np.asarray(Image.open(download(page.get_attribute("#mv-plot img", "src"), path)).convert("RGB"), np.float32)


def test_render_plays_an_mp4_as_long_as_the_song(page, media, url, tmp_path):
    song, _, keys = media
    rows = plan(page, song, keys)
    src = render(page)
    assert src.startswith(url.rstrip("/")) and src.endswith(".mp4")
    page.wait_for_function("document.querySelector('#mv-summary').innerText.includes('hit rate')")
    assert page.inner_text("#mv-summary").startswith(f"{round(SONG_S * FPS)} frames at {FPS} fps.")

    # the browser itself decodes it: its duration is the song's (within a frame), and it plays
    page.wait_for_function("document.querySelector('#mv-video video').readyState >= 1")
    duration = page.evaluate("document.querySelector('#mv-video video').duration")
    assert abs(duration - SONG_S) <= 1 / FPS, duration
    page.evaluate("const v = document.querySelector('#mv-video video'); v.muted = true; v.play()")
    page.wait_for_function("document.querySelector('#mv-video video').currentTime > 0.2")
    assert page.evaluate("document.querySelector('#mv-video video').error") is None

    # what was served is the planned table: each interval's first frame is its start image
    clip = read_video(download(src, tmp_path / "served.mp4"))
    assert clip.num_frames == round(SONG_S * FPS) and clip.audio is not None
    assert abs(clip.audio.duration_s - SONG_S) <= 1 / FPS
    frames = clip.frames.numpy()  # (F, H, W, 3)
    for k, row in enumerate(rows):
        assert nearest(frames[round(float(row[0]) * FPS)], keys)[0] == k, row


def test_a_corrupt_song_says_so_and_the_app_serves_the_next_request(page, media, tmp_path):
    song, _, keys = media
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVE" + np.random.default_rng(0).bytes(2000))
    page.locator("#mv-song input[type=file]").set_input_files(str(corrupt))
    page.locator("#mv-images input[type=file]").set_input_files([str(k) for k in keys])
    page.click("#mv-plan")
    error_toast(page, re.escape("The audio file cannot be read: it is not audio, or it is corrupt or truncated."))
    assert "BPM" not in page.inner_text("#mv-info") and page.locator("#mv-plot img").count() == 0  # nothing planned

    page.locator("#mv-song button[aria-label='Clear']").click()
    page.locator("#mv-images button[aria-label='Clear']").click()
    assert len(plan(page, song, keys)) == 3


def test_an_edited_table_is_what_is_rendered_and_a_broken_one_is_refused(page, media, tmp_path):
    song, _, keys = media
    rows = plan(page, song, keys)
    old_edge, new_edge = float(rows[0][1]), 3.0  # move the first hand-over (astronaut -> coffee) later

    edit_cell(page, 0, 1, "3")  # only interval 1's end: interval 2 now starts inside it
    page.click("#mv-render")
    error_toast(
        page,
        re.escape(
            f"The timeline cannot be used: row 2 starts at {rows[1][0]} s, inside row 1 "
            "(0-3 s): intervals must not overlap."
        ),
    )
    assert page.locator("#mv-video video").count() == 0

    edit_cell(page, 1, 0, "3")  # and interval 2's start: the table is whole again
    clip = read_video(download(render(page), tmp_path / "edited.mp4"))
    frames = clip.frames.numpy()  # (F, H, W, 3)
    assert clip.num_frames == round(SONG_S * FPS)
    at_new, d_new = nearest(frames[round(new_edge * FPS)], keys)
    at_old, d_old = nearest(frames[round(old_edge * FPS)], keys)
    assert at_new == 1, d_new  # coffee now starts interval 2 at 3 s...
    assert d_old[1] > 2 * d_new[1], (d_old, d_new)  # ...and at the planned edge the cross-fade is still under way
    assert nearest(frames[round(float(rows[2][0]) * FPS)], keys)[0] == 2  # the rows not edited are as planned


@pytest.fixture(scope="module")
def prompts_url(tmp_path_factory):
    """The music tab with a text-to-video model in its menu (a saved random-weight tiny pipeline given as --model;
    the bundled scene model is tested in test_bundled_scene_model.py)."""
    from avdiff.pipelines import TextToVideoPipeline

    folder = tmp_path_factory.mktemp("t2v")
    TextToVideoPipeline.from_preset("tiny", seed=0).save_pretrained(folder)
    with serving(build_app(models={"scenes": str(folder)}, bundled=False, tabs=[MusicTab])) as url:
        yield url


def test_prompts_are_planned_on_the_beats_and_rendered_by_the_chosen_model(
    browser, prompts_url, media, request, tmp_path
):
    song, _, _ = media
    with open_page(browser, prompts_url, "#mv-plan", request.node.name) as page:
        assert "scenes" in page.input_value("#mv-model input")  # the model menu offers it, chosen
        page.locator("#mv-song input[type=file]").set_input_files(str(song))
        page.locator("#mv-prompts textarea").fill("a campfire by day\na lake at night")
        set_slider(page, "mv-beats", BEATS_PER_INTERVAL)
        page.click("#mv-plan")
        page.wait_for_function("document.querySelector('#mv-info').innerText.includes('BPM')")
        rows = table(page)
        assert [rows[0][2], rows[0][3]] == ["a campfire by day", "a lake at night"]
        src = render(page)
        page.wait_for_function("document.querySelector('#mv-video video').readyState >= 1")
        duration = page.evaluate("document.querySelector('#mv-video video').duration")
        assert abs(duration - SONG_S) <= 1 / FPS, duration
        clip = read_video(download(src, tmp_path / "prompts.mp4"))
        assert clip.num_frames == round(SONG_S * FPS) and clip.frames.shape[1:3] == (64, 64)  # the model's size
