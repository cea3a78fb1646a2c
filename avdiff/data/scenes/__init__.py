"""Procedural scene clips with known objects, masks and sounds (issue 16's world).

64x64 clips of 16 frames at 8 fps: a sky (day, sunset, night), ground, and one to four objects from a vocabulary of
eight sounding things that move with their sound (campfire, lake, rain, birds, thunderstorm, car, bell, grass) and
four silent ones that hold still (sun, moon, mountain, house), with colours and places (left / centre / right), a
caption composed from them ("a red car on the left beside a lake at night"), a label map per frame and a sound per
sounding object. Object pairs in ``HELD_OUT_PAIRS`` appear only in the test split.

Modules: :mod:`~avdiff.data.scenes.vocabulary` (the world's constants), :mod:`~avdiff.data.scenes.drawing` (one
painter per object), :mod:`~avdiff.data.scenes.compose` (sampling, captions, rendering) and
:mod:`~avdiff.data.scenes.writer` (the DATA folder).
"""

from avdiff.data.scenes.compose import (
    ParsedCaption,
    RenderedScene,
    SceneObject,
    SceneSpec,
    compose_caption,
    object_phrase,
    parse_caption,
    render_scene,
    sample_scene,
)
from avdiff.data.scenes.vocabulary import (
    COLOURED,
    COLOURS,
    FPS,
    HELD_OUT_PAIRS,
    LABELS,
    NUM_FRAMES,
    OBJECTS,
    PLACES,
    SAMPLE_RATE,
    SILENT,
    SIZE,
    SKIES,
    SOUND_OF,
    SOUNDING,
    held_out_pairs_in,
    label_of,
)
from avdiff.data.scenes.writer import (
    SceneClip,
    SceneRecord,
    load_scene_clip,
    make_scene_clip,
    make_scenes,
    object_tracks,
    read_scene_index,
    record_spec,
    write_scene_index,
)

__all__ = [
    "COLOURED",
    "COLOURS",
    "FPS",
    "HELD_OUT_PAIRS",
    "LABELS",
    "NUM_FRAMES",
    "OBJECTS",
    "PLACES",
    "SAMPLE_RATE",
    "SILENT",
    "SIZE",
    "SKIES",
    "SOUNDING",
    "SOUND_OF",
    "ParsedCaption",
    "RenderedScene",
    "SceneClip",
    "SceneObject",
    "SceneRecord",
    "SceneSpec",
    "compose_caption",
    "held_out_pairs_in",
    "label_of",
    "load_scene_clip",
    "make_scene_clip",
    "make_scenes",
    "object_phrase",
    "object_tracks",
    "parse_caption",
    "read_scene_index",
    "record_spec",
    "render_scene",
    "sample_scene",
    "write_scene_index",
]
