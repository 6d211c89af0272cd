"""Make memray's HTML reports open offline, from a downloaded CI artifact.

memray's reports load bootstrap, jQuery, lodash, plotly and d3 from a CDN unless rendered
with ``--no-web``, which inlines copies vendored in the memray wheel. This module finds
any asset a page would still fetch over the network and, where memray ships a copy under
the same file name, inlines it; what cannot be inlined is reported, never silently kept.
Links a reader clicks (``<a href>``) are not assets and stay as they are.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_REMOTE = re.compile(r"""(?:@import\s+(?:url\()?|url\()\s*["']?\s*((?:https?:)?//[^"')\s]+)""",
                         re.IGNORECASE)


class _AssetFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.remote: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and _REMOTE.match(values.get("src", "")):
            self.remote.append(values["src"])
        elif tag == "link" and _REMOTE.match(values.get("href", "")) and \
                values.get("rel", "").lower() in ("stylesheet", "preload", "modulepreload",
                                                  "icon"):
            self.remote.append(values["href"])
        elif tag in ("img", "iframe", "source", "embed", "audio", "video") and \
                _REMOTE.match(values.get("src", "")):
            self.remote.append(values["src"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.remote.extend(match.group(1) for match in _CSS_REMOTE.finditer(data))


def remote_assets(html: str) -> list[str]:
    """URLs of scripts, stylesheets and media the page would fetch over the network."""
    finder = _AssetFinder()
    finder.feed(html)
    finder.close()
    return finder.remote


def memray_vendor_dir() -> Path | None:
    """The folder of third-party assets the memray wheel ships for ``--no-web``."""
    try:
        import memray.reporters
    except ImportError:
        return None
    folder = Path(memray.reporters.__file__).parent / "templates" / "assets" / "vendor"
    return folder if folder.is_dir() else None


_SCRIPT_TAG = re.compile(r"""<script[^>]*\ssrc=["']([^"']+)["'][^>]*>\s*</script>""",
                         re.IGNORECASE)
_LINK_TAG = re.compile(r"""<link[^>]*\shref=["']([^"']+\.css)["'][^>]*>""", re.IGNORECASE)


def inline_remote_assets(html: str, vendor: Path | None) -> tuple[str, list[str]]:
    """``html`` with CDN scripts and stylesheets replaced by the vendored copies.

    Returns the new page and the URLs left remote (no vendored copy of that name).
    """
    if vendor is None:
        return html, remote_assets(html)

    def local(url: str) -> Path | None:
        candidate = vendor / url.split("?", maxsplit=1)[0].rstrip("/").rsplit("/", 1)[-1]
        return candidate if _REMOTE.match(url) and candidate.is_file() else None

    def script(match: re.Match[str]) -> str:
        path = local(match.group(1))
        if path is None:
            return match.group(0)
        body = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
        return f'<script type="text/javascript">{body}</script>'

    def stylesheet(match: re.Match[str]) -> str:
        path = local(match.group(1))
        if path is None:
            return match.group(0)
        return f"<style>{path.read_text(encoding='utf-8')}</style>"

    fixed = _LINK_TAG.sub(stylesheet, _SCRIPT_TAG.sub(script, html))
    return fixed, remote_assets(fixed)
