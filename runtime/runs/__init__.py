"""The run service: kernels per run, the journal, replay, listeners, the work queue's server side.

No module here imports tornado, jupyter_server or Voila (tests/test_layout.py)."""
