"""Self-contained HTML reports: one per image (participant level) and one for the dataset (group level).

Pages load nothing from the network: per-image pages draw with inline SVG and JPEG/PNG data URIs (no plotly,
about 300 KB), the group report inlines plotly.js once.
"""

from flairqc_app.report.group import render_group_report
from flairqc_app.report.participant import render_participant_report

__all__ = ["render_group_report", "render_participant_report"]
