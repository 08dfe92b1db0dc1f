"""`python -m examples.text2image`: the reference's command, on cosmos_core (see `--help`)."""

from cosmos_core.cli import text2image_main

if __name__ == "__main__":
    raise SystemExit(text2image_main())
