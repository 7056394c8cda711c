"""Pages share one compiled set of templates instead of compiling them for every page."""

from __future__ import annotations

from voila import notebook_renderer

from runtime.web.voila import SharedTemplatesExporter, share_page_templates


def test_pages_of_one_server_share_their_template_environment() -> None:
    original = notebook_renderer.VoilaExporter
    try:
        share_page_templates()
        assert notebook_renderer.VoilaExporter is SharedTemplatesExporter
        first = SharedTemplatesExporter(template_name="lab", base_url="/")
        second = SharedTemplatesExporter(template_name="lab", base_url="/")
        elsewhere = SharedTemplatesExporter(template_name="lab", base_url="/labeling/")
        assert first.environment is second.environment
        assert elsewhere.environment is not first.environment
        template = first.environment.get_template("index.html.j2")
        assert second.environment.get_template("index.html.j2") is template
    finally:
        notebook_renderer.VoilaExporter = original
