"""Chaos tests write what they measured to test-artifacts/chaos-<test>.json; docs/reliability.md quotes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def record(artifacts: Path, name: str, figures: dict[str, Any]) -> None:
    (artifacts / f"chaos-{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"chaos figures {name}: {json.dumps(figures, sort_keys=True)}")
