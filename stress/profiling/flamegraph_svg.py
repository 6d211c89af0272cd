"""One SVG flamegraph renderer for every CPU recorder (py-spy and perf).

Input is collapsed stacks (root first) with a weight each; output is a self-contained SVG
(no external fonts or scripts) in the classic layout: the root at the bottom, callees above
their callers, width proportional to time. Every frame carries a ``<title>`` tooltip with
its full name and share. Clicking a frame zooms into it (a few lines of inline script);
without script the SVG is still a complete static picture.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

WIDTH = 1200
PAD = 10
FRAME_H = 17
HEADER_H = 50
FOOTER_H = 10
CHAR_W = 7.0  # average width of a 12px Verdana glyph: enough to decide where labels fit
MIN_WIDTH_PX = 0.3  # narrower frames are dropped: invisible anyway, and they bound the size


@dataclass
class _Node:
    name: str
    value: float = 0.0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(counts: Mapping[tuple[str, ...], float]) -> _Node:
    root = _Node("all")
    for stack, weight in counts.items():
        root.value += weight
        node = root
        for name in stack:
            node = node.children.setdefault(name, _Node(name))
            node.value += weight
    return root


def _color(name: str) -> str:
    """Warm colours for the code under test, cool ones for the event loop's machinery."""
    h = zlib.crc32(name.encode("utf-8"))
    v1, v2, v3 = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255, ((h >> 16) & 0xFF) / 255
    if "asyncio/" in name or "selectors.py" in name or name.startswith("<"):
        return f"rgb({int(80 + 40 * v1)},{int(150 + 50 * v2)},{int(190 + 50 * v3)})"
    return f"rgb({int(205 + 50 * v3)},{int(230 * v1)},{int(55 * v2)})"


def _fit(label: str, width_px: float) -> str:
    chars = int((width_px - 6) / CHAR_W)
    if chars < 3:
        return ""
    return label if len(label) <= chars else label[: chars - 2] + ".."


_ZOOM_SCRIPT = """
const W = %(width)d, PAD = %(pad)d, CW = %(char_w)s;
function label(g) { return g.querySelector('title').textContent.split('\\n')[0]; }
function place(g, x, w) {
  const r = g.querySelector('rect'), t = g.querySelector('text');
  r.setAttribute('x', x.toFixed(2)); r.setAttribute('width', Math.max(w, 0).toFixed(2));
  t.setAttribute('x', (x + 3).toFixed(2));
  const n = Math.floor((w - 6) / CW), full = label(g);
  t.textContent = n < 3 ? '' : (full.length <= n ? full : full.slice(0, n - 2) + '..');
}
function zoom(target) {
  const zx = +target.dataset.x, zw = +target.dataset.w, zd = +target.dataset.d, span = W - 2 * PAD;
  for (const g of document.querySelectorAll('g.f')) {
    const x = +g.dataset.x, w = +g.dataset.w, d = +g.dataset.d;
    if (d >= zd && x >= zx - 1e-9 && x + w <= zx + zw + 1e-9) {
      g.style.display = ''; place(g, PAD + (x - zx) / zw * span, w / zw * span);
    } else if (d < zd && x <= zx + 1e-9 && x + w >= zx + zw - 1e-9) {
      g.style.display = ''; place(g, PAD, span);
    } else { g.style.display = 'none'; }
  }
}
document.addEventListener('click', (e) => {
  const g = e.target.closest ? e.target.closest('g.f') : null; if (g) zoom(g);
});
"""


def render_flamegraph_svg(counts: Mapping[tuple[str, ...], float], *, title: str,
                          subtitle: str = "", unit: str = "s") -> str:
    """The SVG text for ``counts`` (stack of frame labels, root first -> weight)."""
    root = _tree(counts)
    total = root.value or 1.0
    span = WIDTH - 2 * PAD
    # (depth, x fraction, width fraction, node), breadth of the tree drawn left to right.
    placed: list[tuple[int, float, float, _Node]] = []
    pending: list[tuple[int, float, _Node]] = [(0, 0.0, root)]
    max_depth = 0
    while pending:
        depth, x, node = pending.pop()
        w = node.value / total
        if w * span < MIN_WIDTH_PX:
            continue
        placed.append((depth, x, w, node))
        max_depth = max(max_depth, depth)
        child_x = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            pending.append((depth + 1, child_x, child))
            child_x += child.value / total
    height = HEADER_H + (max_depth + 1) * FRAME_H + FOOTER_H
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'font-family="Verdana, DejaVu Sans, sans-serif" font-size="12">',
        "<style>g.f:hover rect { stroke: #000; stroke-width: 0.5; cursor: pointer; }"
        " text { pointer-events: none; }</style>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f0"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="16">{escape(title)}</text>',
        f'<text x="{WIDTH / 2}" y="38" text-anchor="middle" fill="#555">{escape(subtitle)}'
        " (click a frame to zoom, the bottom frame to reset)</text>",
    ]
    for depth, x, w, node in sorted(placed, key=lambda p: (p[0], p[1])):
        y = height - FOOTER_H - (depth + 1) * FRAME_H
        px, pw = PAD + x * span, w * span
        share = 100.0 * node.value / total
        tip = f"{node.name}\n{node.value:.2f} {unit}, {share:.2f}%"
        fill = "rgb(235,235,225)" if depth == 0 else _color(node.name)
        out.append(
            f'<g class="f" data-x="{x:.6f}" data-w="{w:.6f}" data-d="{depth}">'
            f"<title>{escape(tip)}</title>"
            f'<rect x="{px:.2f}" y="{y}" width="{pw:.2f}" height="{FRAME_H - 1}" '
            f'fill={quoteattr(fill)} rx="2"/>'
            f'<text x="{px + 3:.2f}" y="{y + FRAME_H - 5}">{escape(_fit(node.name, pw))}</text>'
            "</g>")
    script = _ZOOM_SCRIPT % {"width": WIDTH, "pad": PAD, "char_w": CHAR_W}
    out.append(f"<script><![CDATA[{script}]]></script>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
