"""LLMasOS: a Kubernetes operator that runs LLM workloads at the lowest-carbon time on the most efficient GPUs."""

__version__ = "0.1.0"
