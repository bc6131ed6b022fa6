"""``python -m crmwatch``: the same as the ``crmwatch`` command."""

from crmwatch.cli import app

app()
