"""YAML read as kubectl reads it: an unquoted time stays the string it was written as.

PyYAML resolves `deadline: 2026-12-01T08:00:00Z` (YAML 1.1's timestamp type) to a datetime object; kubectl's
YAML-to-JSON conversion keeps it a string, and a string is what the API server and the operator see. Manifests and
exports read through this loader give `llmasos plan -f` and `llmasos report -f` what `kubectl apply` would send.
"""

from __future__ import annotations

from typing import Any

import yaml

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class KubectlLoader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: unquoted times and dates load as strings."""


KubectlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str) -> list[Any]:
    """Every document of `text` (yaml.YAMLError on a syntax error), empty documents included as None."""
    return list(yaml.load_all(text, Loader=KubectlLoader))


def load_document(text: str) -> Any:
    """The one document of `text`; yaml.YAMLError on a syntax error."""
    return yaml.load(text, Loader=KubectlLoader)
