"""Thin Prefect tasks: launch a shard on GPUs (a torchrun subprocess), storage I/O, reports.

Tasks never import torch or cosmos_core: the generation runs in its own process.
"""
