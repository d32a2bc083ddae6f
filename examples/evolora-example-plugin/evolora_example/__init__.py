"""Example evolora plug-ins: fitness terms and a search strategy (see pyproject.toml's entry points)."""
