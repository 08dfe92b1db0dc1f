"""Command-line scripts: `python -m scripts.<name>`."""
