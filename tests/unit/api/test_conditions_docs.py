"""Every condition type and reason the operator writes is in the user's table (docs/operator.md, Conditions), with
no name there that the code does not have: `kubectl describe llmjob` shows nothing the docs do not explain."""

from __future__ import annotations

import re
from pathlib import Path

from llmasos.api import conditions

REPO = Path(__file__).resolve().parents[3]
SOURCE = Path(conditions.__file__).read_text()


def constants(section: str, end: str) -> set[str]:
    body = SOURCE.split(section, 1)[1].split(end, 1)[0]
    return set(re.findall(r'^[A-Z_]+ = "([A-Za-z]+)"', body, re.MULTILINE))


def table() -> str:
    doc = (REPO / "docs" / "operator.md").read_text()
    return doc.split("### Conditions", 1)[1].split("\n\n", 3)[2]


def test_every_condition_type_has_a_row() -> None:
    types = constants("# Condition types", "# Reasons")
    rows = set(re.findall(r"^\| `([A-Za-z]+)` \|", table(), re.MULTILINE))
    assert types == rows


def test_every_reason_is_in_the_table_and_the_table_names_no_other() -> None:
    reasons = constants("# Reasons", "@dataclass")
    named = set(re.findall(r"`([A-Z][A-Za-z]+)`", table())) - constants("# Condition types", "# Reasons") - {"False"}
    kubelet = {"ImagePullBackOff", "CrashLoopBackOff", "CreateContainerConfigError"}  # the kubelet's own words
    assert reasons - named == set(), "reasons the operator writes that the table does not explain"
    assert named - reasons - kubelet == set(), "names in the table the operator never writes"
