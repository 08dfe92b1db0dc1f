"""A procedural physics world (balls and boxes on a floor) to train and check the embedded model.

scene.py draws scenes and captions from a seed, render.py turns them into frames, detect.py finds the
objects again by color, metrics.py scores generated images and videos against their scene; text.py is
the embedded model's text encoder over the captions' vocabulary. scripts/train_embedded.py trains on
this world and scripts/evaluate_embedded.py measures the result.
"""

from cosmos_core.world.render import render
from cosmos_core.world.scene import Scene, WorldObject, caption_words, sample_scene, scene_from_seed

__all__ = ["Scene", "WorldObject", "caption_words", "render", "sample_scene", "scene_from_seed"]
