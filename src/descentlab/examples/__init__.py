"""Runnable examples: ``python -m descentlab.examples.<name>`` (see each module's docstring)."""
