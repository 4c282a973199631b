"""Runnable figure modules: python -m figures.<name> writes figures/<name>.png."""
