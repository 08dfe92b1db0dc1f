"""`python -m examples.video2world_bestofn`: the reference's best-of-N command, on cosmos_core (see `--help`)."""

from cosmos_core.bestofn_command import bestofn_main

if __name__ == "__main__":
    raise SystemExit(bestofn_main())
