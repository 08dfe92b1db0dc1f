"""`python -m examples.video2world`: the reference's command, on cosmos_core (see `--help`)."""

from cosmos_core.cli import video2world_main

if __name__ == "__main__":
    raise SystemExit(video2world_main())
