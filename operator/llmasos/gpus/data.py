"""Reading the shipped GPU measurements (operator/llmasos/data/gpu-power, Apache-2.0, see SOURCE.md there)."""

from __future__ import annotations

import csv
from importlib import resources

DATA_DIR = "data/gpu-power"


def read_csv(name: str) -> list[dict[str, str]]:
    """The rows of one CSV file of the shipped GPU data, as dicts keyed by its header."""
    text = resources.files("llmasos").joinpath(f"{DATA_DIR}/{name}").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))
