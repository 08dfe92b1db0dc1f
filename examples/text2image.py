"""`python -m examples.text2image`: the reference's command, on cosmos_core (see `--help`)."""

from examples import run_command

if __name__ == "__main__":
    run_command("cosmos_core.cli", "text2image_main")
