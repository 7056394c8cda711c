"""What the tests and benchmarks share; none of it ships in the wheel.

- `processes`: free ports, servers as child processes (`ServerProcess`, `start_voila`,
  `start_freezer`, `start_server`), the process tree under them, killing it.
- `eventually`: the one wait for a condition (`eventually`, `eventually_sync`), `run_async`.
- `protocol`: the kernel websocket protocol (messages, v1 and legacy framing, widget refs).
- `pages`: what the client reads from HTML pages, and a person's cookies.
- `person`: a simulated person (`Person`): sign-in, Start, busy pages, opening pages.
- `session` and `widgets`: a page connected to its kernel (`PageSession`) and the widget
  states its front-end keeps (`WidgetManager`).
- `frontend`: a widget front-end straight on a kernel's channels (`Frontend`, runner tests).
- `offline`: the route guard that keeps browser pages on this machine.
- `errors`: `ClientError`.
"""
