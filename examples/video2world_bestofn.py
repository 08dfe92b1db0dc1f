"""`python -m examples.video2world_bestofn`: the reference's best-of-N command, on cosmos_core (see `--help`)."""

from examples import run_command

if __name__ == "__main__":
    run_command("cosmos_core.bestofn_command", "bestofn_main")
