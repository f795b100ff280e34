"""The command line: a Typer app (`main.py`) and its commands (`commands.py`)."""
