"""Example provider plugged in through an entry point (written in a later step)."""
