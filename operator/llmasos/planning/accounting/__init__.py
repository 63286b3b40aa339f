"""How much: energy ledgers, emissions integrals, budgets, power-cap savings and the status they render."""
