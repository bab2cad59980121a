"""`python -m flows STAGE ...`: the `lmforge` CLI without the console script."""

from flows.cli import app

app()
