"""Errors a person can act on."""

from __future__ import annotations


class ImpastoError(Exception):
    """A problem with the user's input or environment.

    The command line prints it as one line and exits with code 2; the Python API lets it propagate.
    """
