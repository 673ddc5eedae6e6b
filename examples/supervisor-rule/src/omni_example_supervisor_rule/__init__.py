"""Example custom routing rule: every chat of the queue goes to its supervisor (written in a later step)."""
