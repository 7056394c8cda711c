"""Kernel-side capture of a cell's outputs into an `Output` widget's `outputs` state.

The runner runs stage cells with IPython's `run_cell` and, for the length of one cell, swaps the
shell's output paths (`sys.stdout`/`sys.stderr`, the display publisher, the display hook and the
traceback display) for ones that append nbformat output dicts to an :class:`OutputSink`. The
outputs then exist in the kernel whether or not a browser is attached, unlike `with out:`, which
relies on a front-end to route messages into the widget.

Output that a cell sends inside a `with out:` block of one of the notebook's own `Output`
widgets (for example the first call of an `interact` function) goes to that widget's
`outputs`, the way a front-end would route it, but in the kernel.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher

from runtime.kernel.outputs import Output, OutputSink
from runtime.kernel.outputs import apply_carriage_returns as apply_carriage_returns  # re-exported


def _ends_with_semicolon(source: str) -> bool:
    """A trailing `;` silences the cell's last expression, as in Jupyter."""
    try:
        return bool(DisplayHook.semicolon_at_end_of_expression(source))  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - tokenizer errors: the cell ran, so show its value
        return False


@dataclass(frozen=True)
class CellError:
    """An exception a cell raised, as IPython formatted it."""

    ename: str
    evalue: str
    traceback: list[str]  # IPython's structured traceback (lines with ANSI colours)


class CaptureStream:
    """`sys.stdout` / `sys.stderr` while a cell runs: text goes to the capture's sink."""

    def __init__(self, capture: Capture, name: str, original: TextIO) -> None:
        self._capture = capture
        self._original = original
        self.name = f"<freezer {name}>"
        self.stream_name = name
        self.encoding = "utf-8"
        self.errors = "replace"
        self.closed = False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        sink = self._capture.target()
        if sink is not None:
            sink.add_stream(self.stream_name, text)
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._original.fileno()

    # ipykernel's shell sets the parent request on the streams (`Output.__enter__` does).
    def set_parent(self, parent: Any) -> None:
        _delegate(self._original, "set_parent", parent)

    def set_thread_parent(self, parent: Any) -> Any:
        return _delegate(self._original, "set_thread_parent", parent)

    def reset_thread_parent(self, token: Any) -> None:
        _delegate(self._original, "reset_thread_parent", token)


def _delegate(target: Any, method: str, *args: Any) -> Any:
    func = getattr(target, method, None)
    return func(*args) if func is not None else None


class CapturePublisher(DisplayPublisher):
    """The shell's display publisher while a cell runs: `display`, updates, `clear_output`."""

    def __init__(self, capture: Capture) -> None:
        super().__init__(shell=None)  # type: ignore[no-untyped-call]
        self._capture = capture

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        *args: Any,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        capture = self._capture
        display_id = (transient or {}).get("display_id")
        metadata = metadata or {}
        if update:
            if display_id is not None and not capture.update_display(display_id, data, metadata):
                # Shown outside any stage: let the front-end update it where it is.
                capture.original_pub.publish(
                    data, metadata, transient=transient, update=True, **kwargs
                )
            return
        sink = capture.target()
        if sink is not None:
            output = {"output_type": "display_data", "data": data, "metadata": metadata}
            sink.add(output, display_id)

    # ipykernel's shell sets the parent request on its publisher (`Output.__enter__` does).
    def set_parent(self, parent: Any) -> None:
        _delegate(self._capture.original_pub, "set_parent", parent)

    def set_thread_parent(self, parent: Any) -> Any:
        return _delegate(self._capture.original_pub, "set_thread_parent", parent)

    def reset_thread_parent(self, token: Any) -> None:
        _delegate(self._capture.original_pub, "reset_thread_parent", token)

    def clear_output(self, wait: bool = False) -> None:
        sink = self._capture.target()
        if sink is not None:
            sink.clear(wait)


class CaptureHook:
    """`sys.displayhook` while a cell runs: the cell's last expression, as `execute_result`."""

    def __init__(self, capture: Capture, original: Any) -> None:
        self._capture = capture
        self._original = original

    def __call__(self, result: Any = None) -> None:
        capture = self._capture
        if result is None or _ends_with_semicolon(capture.source):
            return
        shell = capture.shell
        format_dict, md_dict = shell.display_formatter.format(result)
        self._original.update_user_ns(result)
        self._original.fill_exec_result(result)
        if not format_dict or capture.sink is None:
            return
        capture.sink.add(
            {
                "output_type": "execute_result",
                "data": format_dict,
                "metadata": md_dict,
                "execution_count": None,
            }
        )


class Capture:
    """Routes the outputs of the cell being run into an :class:`OutputSink`.

    One instance per kernel; :meth:`cell` installs it around one `run_cell`.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.sink: OutputSink | None = None
        self.source = ""
        self.error: CellError | None = None
        self.original_pub: Any = shell.display_pub
        self._sinks: list[OutputSink] = []
        self._own_widgets: set[int] = set()
        self._nested: dict[int, OutputSink] = {}
        self.show_tracebacks = False  # set by the runner from the run's configuration
        self._outputs_cache: tuple[tuple[int, str | None], list[Any]] = ((-1, None), [])

    def register(self, sink: OutputSink, widget: Any) -> None:
        """Remember a stage sink (display updates reach it) and its widget (never nested)."""
        self._sinks.append(sink)
        self._own_widgets.add(id(widget))

    def update_display(self, display_id: str, data: dict[str, Any], metadata: Any) -> bool:
        """Apply an `update_display` to every stage output with that display id."""
        found = False
        for sink in self._sinks:
            found = sink.update_display(display_id, data, metadata) or found
        if self.sink is not None and self.sink not in self._sinks:
            found = self.sink.update_display(display_id, data, metadata) or found
        return found

    @contextmanager
    def cell(self, source: str, sink: OutputSink | None) -> Iterator[None]:
        """Capture while the body runs `source`; `sink=None` discards the outputs."""
        shell = self.shell
        self.sink, self.source, self.error = sink, source, None
        if sink is not None:
            sink.begin_cell()
        saved_out, saved_err, saved_hook = sys.stdout, sys.stderr, sys.displayhook
        self.original_pub = shell.display_pub
        original_hook = shell.displayhook
        hook = CaptureHook(self, original_hook)
        trap = shell.display_trap
        saved_trap_hook = trap.hook
        sys.stdout = CaptureStream(self, "stdout", saved_out)
        sys.stderr = CaptureStream(self, "stderr", saved_err)
        shell.display_pub = CapturePublisher(self)
        sys.displayhook = hook
        trap.hook = hook
        shell._showtraceback = self._showtraceback
        try:
            yield
        finally:
            del shell._showtraceback
            trap.hook = saved_trap_hook
            sys.displayhook = saved_hook
            shell.display_pub = self.original_pub
            sys.stdout, sys.stderr = saved_out, saved_err
            for written in [sink, *self._nested.values()]:
                if written is not None:
                    written.push()
            self._nested.clear()
            self.sink = None

    def target(self) -> OutputSink | None:
        """Where output goes now: a notebook `Output` inside `with out:`, else the cell's sink."""
        nested = self._active_output()
        if nested is None:
            return self.sink
        sink = self._nested.get(id(nested))
        if sink is None:
            # Written in the kernel, like the stage outputs, so that the output exists even
            # when no browser is attached to route it (a page that connects later, a replay).
            sink = OutputSink(nested.outputs)
            sink.attach(nested)
            self._nested[id(nested)] = sink
        return sink

    def _active_output(self) -> Any:
        """The notebook `Output` widget inside whose `with out:` block the cell is, if any."""
        # The same parent request `Output.__enter__` takes its msg_id from.
        get_parent = getattr(self.shell, "get_parent", None)
        parent = get_parent() if get_parent is not None else None
        if not parent:
            kernel = getattr(self.shell, "kernel", None)
            parent = kernel.get_parent() if kernel is not None else None
        msg_id = (parent or {}).get("header", {}).get("msg_id")
        if not msg_id:
            return None
        for widget in self._output_widgets():
            if widget.msg_id == msg_id and id(widget) not in self._own_widgets:
                return widget
        return None

    def _output_widgets(self) -> list[Any]:
        # Scanning every widget on each write would be slow with thousands of widgets; the
        # list of Output widgets changes only when widgets are created or closed.
        from ipywidgets import Output as OutputWidget
        from ipywidgets.widgets import widget as widget_module

        instances: dict[str, Any] = widget_module._instances
        key = (len(instances), next(reversed(instances), None) if instances else None)
        if key != self._outputs_cache[0]:
            found = [w for w in list(instances.values()) if isinstance(w, OutputWidget)]
            self._outputs_cache = (key, found)
        return self._outputs_cache[1]

    def _showtraceback(self, etype: type[BaseException], evalue: Any, stb: list[str]) -> None:
        error = CellError(etype.__name__, str(evalue), list(stb))
        nested = self._active_output()
        if nested is None:
            self.error = error  # the runner decides how the stage shows it
            return
        sink = self.target()
        if sink is not None:
            for output in self.error_outputs(error):
                sink.add(output)

    def error_outputs(self, error: CellError) -> list[Output]:
        """How an error a cell showed looks: the traceback, or one line without it."""
        if self.show_tracebacks:
            return [
                {
                    "output_type": "error",
                    "ename": error.ename,
                    "evalue": error.evalue,
                    "traceback": error.traceback,
                }
            ]
        text = f"{error.ename}: {error.evalue}".splitlines()[0] + "\n"
        return [{"output_type": "stream", "name": "stderr", "text": text}]
