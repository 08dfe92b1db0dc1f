"""`python -m examples.video2world`: the reference's command, on cosmos_core (see `--help`)."""

from examples import run_command

if __name__ == "__main__":
    run_command("cosmos_core.cli", "video2world_main")
