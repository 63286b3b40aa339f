"""When to run: the fleet planner, which chooses windows for many jobs that share pools of limited capacity.

The single-job windows, forecasts, segments and re-planning still live flat in `llmasos.planning`; this package
builds on them (it never copies them) and adds what only a fleet has: capacity over time, reservations, contention.
"""
