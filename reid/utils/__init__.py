"""Floor 0: what every other part uses and that imports nothing else of reid (errors, atomic writes,
checkpoints, RNG state)."""
