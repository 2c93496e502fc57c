"""Charts for the dashboard, drawn on the server as inline SVG: no script (the CSP stays
`script-src 'self'`), sized by their viewBox so they shrink to a 390 px screen. Each chart is
an image with a title for assistive technology; the page puts a table of the same figures
beside it. Colours come from app.css classes (style-src 'self')."""
from markupsafe import Markup, escape

WIDTH, HEIGHT, AXIS = 300, 72, 14
LABEL_CHARS = 60


def day_bars(label: str, series: str, days: list[dict]) -> Markup:
    """One bar per day of `days[i][series]`; the tallest bar is the series' peak."""
    values = [max(0, int(d.get(series, 0))) for d in days]
    peak = max(values) or 1
    step = WIDTH / max(1, len(values))
    plot = HEIGHT - AXIS
    bars = []
    for i, (d, n) in enumerate(zip(days, values, strict=True)):
        height = round(plot * n / peak, 2)
        x = round(i * step + step * 0.1, 2)
        bars.append(f'<rect class="bar {escape(series)}" x="{x}" y="{round(plot - height, 2)}" '
                    f'width="{round(step * 0.8, 2)}" height="{height}" data-day="{d["day"]}" '
                    f'data-value="{n}"><title>{d["day"]}: {n}</title></rect>')
    total = sum(values)
    first, last = (days[0]["day"][5:], days[-1]["day"][5:]) if days else ("", "")
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}: {total} in {len(values)} days, at most {max(values or [0])}'
        f' a day" data-series="{escape(series)}" preserveAspectRatio="none">'
        f'<line class="axis" x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}"/>'
        + "".join(bars) +
        f'<text class="tick" x="0" y="{HEIGHT - 2}">{first}</text>'
        f'<text class="tick" x="{WIDTH}" y="{HEIGHT - 2}" text-anchor="end">{last}</text>'
        '</svg>')


def share_bars(label: str, counts: dict) -> Markup:
    """Horizontal bars, one per key of `counts` (largest first), each labelled with its key.
    The labels are HTML text at the page's size beside each bar's own small SVG: text inside
    one scaled SVG grew with the card (a 9-unit label was 31 px at 1280 px) and ran into its
    bar. Keys longer than LABEL_CHARS end in "…" (the whole key is its title)."""
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
    peak = max((n for _, n in items), default=0) or 1
    parts = []
    for name, n in items:
        name = str(name)
        shown = name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"
        parts.append(f'<span class="share-label" title="{escape(name)}">{escape(shown)}</span>'
                     f'<svg class="share-bar" viewBox="0 0 100 10" preserveAspectRatio="none" '
                     f'aria-hidden="true"><rect class="bar failed" x="0" y="0" '
                     f'width="{round(100 * n / peak, 2)}" height="10" data-value="{n}">'
                     f'<title>{escape(name)}: {n}</title></rect></svg>'
                     f'<span class="share-n">{n}</span>')
    summary = ", ".join(f"{name}: {n}" for name, n in items)
    return Markup(f'<div class="share-bars" role="img" aria-label="{escape(label)}: '
                  f'{escape(summary)}">' + "".join(parts) + '</div>')
