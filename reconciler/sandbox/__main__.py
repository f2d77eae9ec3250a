"""``python -m reconciler.sandbox serve ...``: the sandbox without the rest of the CLI."""

from .cli import sandbox

sandbox(prog_name="python -m reconciler.sandbox")
