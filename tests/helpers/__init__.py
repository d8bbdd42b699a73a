"""Helpers shared by test modules, imported as ``tests.helpers.<module>`` (the repository root
is on pytest's path: see ``pythonpath`` in pyproject.toml)."""
