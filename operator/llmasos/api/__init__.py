"""The LLMJob API: spec and status models, the CRD schema (single source of truth), conditions, worker contract."""
