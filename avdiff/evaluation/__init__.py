"""Harnesses that run pipelines on datasets and score the results with the leaf scorers of :mod:`avdiff.metrics`.

Modules: :mod:`~avdiff.evaluation.talking_head` (the talking-head benchmark over held-out DATA clips),
:mod:`~avdiff.evaluation.syncnet` (SyncNet scores of any video file, its face tracked as ``avdiff prepare`` does)
and :mod:`~avdiff.evaluation.scene` (prompt fidelity against the scene world's vocabulary and captions).
"""
