"""What Freezer adds to the head of Voila's app page: relative links, and widgets that cannot show.

- **Relative links.** The page of a run is `/run/<run_id>`; a markdown `![a picture](pic.png)` or
  an HTML output's `<img src="i/cat.gif">` must load the run's files from `/run/<run_id>/...`
  (:mod:`runtime.web.runfile_handlers`), so the page's base URL is the run's path with a trailing
  slash. In-page anchors (`#heading`) keep pointing into the page itself.
- **Widgets whose front-end is not installed.** The widget manager shows a model it cannot load
  (no labextension for its `_model_module`, or one built for ipywidgets 7) as an error view
  that says only "Click to show javascript error". Freezer replaces it with a sentence naming
  the widget's module, read from the error the view holds.
"""

from __future__ import annotations

import re

HEAD_TAG = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
UNAVAILABLE_CLASS = "freezer-widget-unavailable"
"""The class of the note that replaces a widget which cannot be shown (named in PAGE_HEAD)."""

PAGE_HEAD = """
<script>
(function () {
  // Relative URLs of outputs resolve under /run/<run_id>/, where the run's files are served.
  var base = document.createElement("base");
  base.href = location.pathname.replace(/\\/*$/, "/");
  document.head.appendChild(base);
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest('a[href^="#"]');
    if (link) {
      event.preventDefault();
      location.hash = link.getAttribute("href");
    }
  });

  // A widget whose front-end cannot be loaded: a sentence instead of the error icon.
  function sentence(text) {
    var missing = /No version of module (\\S+) is registered/.exec(text);
    if (missing) {
      return "This widget cannot be shown: its front-end, the JavaScript package \\u201c" +
        missing[1] + "\\u201d, is not installed on this server.";
    }
    var version = /Module (\\S+), version (\\S+) is not registered, however,\\s+(\\S+)/.exec(text);
    if (version) {
      return "This widget cannot be shown: it needs version " + version[2] + " of the " +
        "JavaScript package \\u201c" + version[1] + "\\u201d, and this server has " +
        version[3] + " (a front-end built for another ipywidgets version).";
    }
    var klass = /Class (\\S+) not found in module (\\S+)/.exec(text);
    if (klass) {
      return "This widget cannot be shown: the JavaScript package \\u201c" + klass[2] +
        "\\u201d installed on this server has no " + klass[1] + ".";
    }
    return "This widget cannot be shown: its front-end could not be loaded.";
  }
  function replaceErrorView(icon) {
    var view = icon.closest(".jupyter-widgets") || icon.parentElement;
    if (!view || view.classList.contains("freezer-widget-unavailable")) {
      return;
    }
    var text = "";
    if (typeof view.onclick === "function") {
      view.onclick();  // the view writes its error (message and stack) into itself
      text = view.textContent || "";
    }
    view.onclick = null;
    view.ondblclick = null;
    var note = document.createElement("p");
    note.className = "freezer-widget-unavailable-text";
    note.textContent = sentence(text);
    view.replaceChildren(note);
    view.classList.add("freezer-widget-unavailable");
    console.warn("Freezer: " + note.textContent + "\\n" + text);
  }
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) {
        if (node.nodeType !== 1) {
          return;
        }
        if (node.matches(".jupyter-widgets-error-widget")) {
          replaceErrorView(node);
        }
        node.querySelectorAll(".jupyter-widgets-error-widget").forEach(replaceErrorView);
      });
    });
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
<style>
  .freezer-widget-unavailable {
    padding: 0.5em 0.8em; border-left: 3px solid #c62828; background: #fdf3f3;
  }
  .freezer-widget-unavailable-text { margin: 0; color: #222; }
</style>
"""


def with_page_head(html: str) -> tuple[str, bool]:
    """`html` with Freezer's head additions after its `<head>` tag; and whether it had one."""
    match = HEAD_TAG.search(html)
    if match is None:
        return html, False
    return html[: match.end()] + PAGE_HEAD + html[match.end():], True
