"""The run page's watch on its kernel: when the kernel dies, the page says the run is being
rebuilt and reloads itself (the reload replays the run in a fresh kernel).

Voila's front-end shows nothing when its kernel dies: the widgets stay on the page and stop
answering. :data:`KERNEL_WATCH` is a small script :func:`with_kernel_watch` puts at the top of
the page's `<head>`, before Voila's own scripts open the kernel websocket. It wraps the page's
`WebSocket` and, on the kernel channels socket only,

- reads the `status: dead` message jupyter_server sends when its restarter finds the kernel's
  process gone;
- when the socket closes while the page stays open, and every few seconds while no kernel
  socket is open (a kernel that died before the page connected), asks the server for the
  kernel's model (`GET /api/kernels/<id>`): 403 or 404 means the kernel is gone.

Either way the page shows one plain sentence and reloads after a moment. A run whose stage ends
its kernel every time comes back as Freezer's "this run had to be stopped" page after a few
reloads (:mod:`runtime.runs.kernel_deaths`).
"""

from __future__ import annotations

import json

REBUILDING = "The app stopped while it worked on your run; your run is being rebuilt…"
RELOAD_AFTER_MS = 1500
PROBE_EVERY_MS = 3000

KERNEL_WATCH = r"""<script>
(function () {
  var Native = window.WebSocket;
  if (!Native || window.freezerKernelWatch) { return; }
  var leaving = false;
  var told = false;
  window.addEventListener("pagehide", function () { leaving = true; });
  window.addEventListener("beforeunload", function () { leaving = true; });
  function rebuilding() {
    if (told || leaving || window.freezerLeaving) { return; }
    told = true;
    var note = document.createElement("div");
    note.id = "freezer-rebuilding";
    note.setAttribute("role", "status");
    note.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:10000;padding:.8em 1em;" +
      "background:#fff3cd;color:#5c4400;border-bottom:1px solid #e0c060;font:1rem system-ui," +
      "sans-serif;text-align:center";
    note.textContent = __REBUILDING__;
    document.body.appendChild(note);
    setTimeout(function () { window.location.reload(); }, __RELOAD_AFTER_MS__);
  }
  function isDead(text) {
    return /"execution_state"\s*:\s*"dead"/.test(text);
  }
  function read(data) {
    if (typeof data === "string") { if (isDead(data)) { rebuilding(); } }
    else if (data instanceof ArrayBuffer) {
      if (isDead(new TextDecoder().decode(data))) { rebuilding(); }
    } else if (data && typeof data.text === "function") {
      data.text().then(function (text) { if (isDead(text)) { rebuilding(); } });
    }
  }
  var open = 0;
  function modelUrl() {
    var config = document.getElementById("jupyter-config-data");
    if (!config) { return null; }
    var data = JSON.parse(config.textContent || "{}");
    if (!data.kernelId) { return null; }
    var base = data.baseUrl || "/";
    return window.location.origin + base.replace(/\/?$/, "/") + "api/kernels/" + data.kernelId;
  }
  function probe() {
    var model = modelUrl();
    if (leaving || told || !model) { return; }
    fetch(model, {credentials: "same-origin"}).then(function (response) {
      if (response.status === 404 || response.status === 403) { rebuilding(); }
    }, function () {});
  }
  class Watched extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      var path = new URL(String(url), window.location.href).pathname;
      if (/\/api\/kernels\/[^\/]+\/channels$/.test(path)) {
        var opened = false;
        this.addEventListener("open", function () { opened = true; open += 1; });
        this.addEventListener("message", function (event) { read(event.data); });
        this.addEventListener("close", function () {
          if (opened) { open -= 1; }
          probe();
        });
      }
    }
  }
  // a kernel that died before the page connected: no socket opens, ask now and then
  setInterval(function () { if (open === 0) { probe(); } }, __PROBE_EVERY_MS__);
  window.WebSocket = Watched;
  window.freezerKernelWatch = true;
})();
</script>
"""


def kernel_watch_script() -> str:
    """The `<script>` element of the watch, with its sentence and delay filled in."""
    return (KERNEL_WATCH.replace("__REBUILDING__", json.dumps(REBUILDING))
            .replace("__RELOAD_AFTER_MS__", str(RELOAD_AFTER_MS))
            .replace("__PROBE_EVERY_MS__", str(PROBE_EVERY_MS)))


def with_kernel_watch(html: str) -> str:
    """`html` with the watch right after its `<head>` tag (unchanged when it has none)."""
    head = html.find("<head>")
    if head < 0:
        return html
    at = head + len("<head>")
    return html[:at] + "\n" + kernel_watch_script() + html[at:]
