"""Pipelines that load their models once and then generate many requests (the batch workers' API)."""

from cosmos_core.pipelines.base import Generation, resolve_preset, save_generation
from cosmos_core.pipelines.text2image import Text2ImagePipeline
from cosmos_core.pipelines.text2world import Text2WorldPipeline
from cosmos_core.pipelines.video2world import Video2WorldPipeline

__all__ = [
    "Generation",
    "Text2ImagePipeline",
    "Text2WorldPipeline",
    "Video2WorldPipeline",
    "resolve_preset",
    "save_generation",
]
