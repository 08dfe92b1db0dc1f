"""`python -m examples.text2world`: the reference's command, on cosmos_core (see `--help`)."""

from cosmos_core.cli import text2world_main

if __name__ == "__main__":
    raise SystemExit(text2world_main())
