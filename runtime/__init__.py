"""Freezer's runtime: the multi-user server and the kernel-side runner of a frozen app."""

from __future__ import annotations

__version__ = "0.1.0"
