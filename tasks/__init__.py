"""Thin Prefect tasks: launch a shard on GPUs (a torchrun subprocess), storage I/O, reports.

Tasks never import torch or cosmos_core: the generation runs in its own process.
"""

import os

# The project runs Prefect offline: no client telemetry, and no first-import notice about it on a
# terminal. Set before any Prefect import of flows/ or tasks/ (flows/__init__.py imports this package);
# a user's own DO_NOT_TRACK value wins.
os.environ.setdefault("DO_NOT_TRACK", "1")
