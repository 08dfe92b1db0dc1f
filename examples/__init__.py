"""The reference's example commands (`python -m examples.<name>`), as thin shims over cosmos_core.cli."""
