"""Model presets: YAML files shipped inside the package, one folder per kind (``unet/``, ``talking_head/``,
``text_to_video/``), read by :mod:`avdiff.models.builders` through :mod:`importlib.resources`, so that
``build_unet("tiny")`` and ``TalkingHeadPipeline.from_preset("tiny")`` work from an installed wheel as well as from a
checkout. (``configs/`` at the top of the repository keeps the training recipes users copy and edit.)
"""
