"""The ``evolora`` command line: its grammar (:mod:`.parser`), the commands (:mod:`.commands`), what is checked
before anything loads (:mod:`.preflight`), and the MLflow UI it serves (:mod:`.ui`, :mod:`.uiapp`)."""

from .commands import main

__all__ = ["main"]
