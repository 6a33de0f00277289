"""The burndown chart of the status page: a self-contained SVG drawn with pygal."""

from __future__ import annotations

import re
from datetime import date

_SCRIPT = re.compile(rb"<script\b.*?</script>", re.S)


SIZES = {"wide": (900, 380), "narrow": (480, 400)}  # the narrow one is for phones: larger text


def burndown_svg(release: str, days: list[date], counts: list[tuple[int, int, int]],
                 size: str = "wide") -> bytes:
    """Open blockers, open nice-to-haves and the scope (every item in the release so far,
    whatever its state) per day, as an SVG with no scripts. The background is transparent and
    the text mid-grey, so the chart reads on the page's light and dark colours alike; it has a
    viewBox and no fixed size, so it scales to the width it is given."""
    import pygal
    from pygal.style import Style

    style = Style(background="transparent", plot_background="transparent", foreground="#888",
                  foreground_strong="#888", foreground_subtle="#8884",
                  colors=("#d0453a", "#2f8fd8", "#8a8a8a"), font_family="sans-serif",
                  label_font_size=13, major_label_font_size=13, legend_font_size=15,
                  title_font_size=17)
    width, height = SIZES[size]
    chart = pygal.Line(
        title=f"{release}: open items and scope per day", style=style, width=width, height=height,
        show_dots=len(days) <= 60, dots_size=2.5, fill=False, x_label_rotation=30,
        show_minor_x_labels=False, x_labels_major_every=max(1, len(days) // (10 if size == "wide" else 5)),
        truncate_label=-1, truncate_legend=-1, legend_at_bottom=True, include_x_axis=True,
        min_scale=2, max_scale=8, js=[],  # no scripts: nothing is fetched from anywhere
        disable_xml_declaration=False, print_values=False)
    chart.x_labels = [d.isoformat() for d in days]
    chart.add("open blockers", [b for b, _, _ in counts])
    chart.add("open nice to have", [n for _, n, _ in counts])
    chart.add("scope (items added)", [sc for _, _, sc in counts], stroke_style={"dasharray": "6, 4"})
    # pygal still inlines its tooltip config as a <script>: the chart is a picture, drop it.
    # (The text inside is XML-escaped, so the first closing tag is the element's own.)
    return _SCRIPT.sub(b"", chart.render())


__all__ = ["SIZES", "burndown_svg"]
