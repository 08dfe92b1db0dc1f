"""cosmos_core: the Cosmos-Predict2 inference stack in plain PyTorch.

Networks (`dit`, `vae`, `text_encoder`), the official sampler (`sampler`, `denoiser`), checkpoint
loading (`checkpoints`) and presets (`presets`). Nothing here imports Prefect: the batch layer starts
this package in its own process.
"""
