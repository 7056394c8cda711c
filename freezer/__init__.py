"""Freezer: compile an interactive notebook pipeline into a multi-user web app."""

from __future__ import annotations

__version__ = "0.1.0"
