"""Training: the loop (engine) and its numerical diagnostics."""
