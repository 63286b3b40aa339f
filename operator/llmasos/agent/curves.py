"""Moved to `llmasos.gpus.curves` (the one GPU catalog). Kept only for e2e/deviceplugin, which imports
`load_product` from here; import from `llmasos.gpus.curves` instead, and delete this module once nothing does."""

from llmasos.gpus.curves import Product, WorkloadCurve, load_product

__all__ = ["Product", "WorkloadCurve", "load_product"]
