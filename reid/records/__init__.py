"""Recording results: provenance, the protocol card, results tables, card comparison, seed statistics."""
