"""The audio-aligned scene job (AADiff): a prompt and sounds give a scene whose sounding element follows the sound
(:class:`~avdiff.pipelines.audio_scene.pipeline_audio_scene.AudioScenePipeline`)."""

from avdiff.pipelines.audio_scene.pipeline_audio_scene import AudioSceneOutput, AudioScenePipeline, SceneTarget

__all__ = ["AudioSceneOutput", "AudioScenePipeline", "SceneTarget"]
