"""The one GPU catalog: which products LLMasOS knows, under which names, how fast and how hungry each one is, and
the measured power-limit curves it answers caps with.

Planning (pool choice, energy estimates), accounting (power-cap savings), the node agent's simulator and the
benchmarks all read their GPU facts here, so that a product has one key, one power figure and one curve.
"""
