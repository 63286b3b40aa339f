"""One vocabulary for settings: the Helm value named in settings errors (settings.CHART_KEYS) is the one the chart
really passes to that LLMASOS_* variable, and docs/operator.md lists the same three names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmasos.settings import CHART_KEYS, _camel

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = REPO / "charts" / "llmasos" / "templates" / "operator" / "deployment.yaml"


@pytest.mark.parametrize(("name", "key"), sorted(CHART_KEYS.items()))
def test_chart_passes_the_named_value_to_the_variable(name: str, key: str) -> None:
    env = f"LLMASOS_{name.upper()}"
    pattern = rf"- name: {env}\s*\n\s*value: \{{\{{[^}}]*\.Values\.{re.escape(key)}\b"
    assert re.search(pattern, DEPLOYMENT.read_text()), f"the chart does not set {env} from .Values.{key}"


def test_operator_doc_lists_the_same_names() -> None:
    text = (REPO / "docs" / "operator.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(LLMASOS_\w+)` \| `([\w.]+)` \|$", text, flags=re.M)
    assert rows == [(_camel(n), f"LLMASOS_{n.upper()}", k) for n, k in CHART_KEYS.items()]
