"""The `omni` admin command."""
