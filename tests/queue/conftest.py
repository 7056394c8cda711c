"""The work queue tests use the runner tests' app directories and real kernels."""

from tests.runner.conftest import make_app, start_app

__all__ = ["make_app", "start_app"]
