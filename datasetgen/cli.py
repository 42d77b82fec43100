"""`prep` commands of the datasetgen stage (thin: parse options, call the library, report)."""

from __future__ import annotations

import click

commands: list[click.Command] = []
