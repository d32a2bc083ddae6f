"""Example evolora fitness plug-ins (see pyproject.toml's entry points)."""
