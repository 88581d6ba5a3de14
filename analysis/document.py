"""A tiny document model rendered both as Markdown and as one self-contained HTML page.

The report is built once as a list of blocks; each renderer walks the same list, so the two formats
cannot drift apart. HTML embeds images as base64 data URIs and carries its CSS inline.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import os
from pathlib import Path

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1.2em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #d62728;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.note{background:#fff7e0;border-left:4px solid #f0a500;padding:.5em .8em;margin:.8em 0}
.banner{background:#eef4ff;border-left:4px solid #1f77b4;padding:.6em .9em;font-weight:600}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}.renders{display:flex;flex-wrap:wrap;gap:1em}
.renders figure{max-width:48%}.agrees{color:#2a7d2a;font-weight:600}.differs{color:#b22222;font-weight:600}
.partly{color:#b8860b;font-weight:600}.not-measurable{color:#777}
code{background:#f4f4f4;padding:0 .2em}
"""


@dataclasses.dataclass
class Block:
    kind: str                      # h1 h2 h3 p banner note list table figure images
    text: str = ""
    items: list = dataclasses.field(default_factory=list)   # list items, table rows, images
    header: list = dataclasses.field(default_factory=list)  # table header
    path: Path | None = None        # figure file


class Doc:
    def __init__(self):
        self.blocks: list[Block] = []

    def add(self, kind: str, text: str = "", **kw) -> "Doc":
        self.blocks.append(Block(kind, text, **kw))
        return self


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Doc, base: Path) -> str:
    """Markdown with image links relative to ``base`` (the report's folder)."""
    out = []
    for b in doc.blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind in ("banner", "note"):
            out.append("> " + ("**Note:** " if b.kind == "note" else "**") + b.text
                       + ("" if b.kind == "note" else "**"))
        elif b.kind == "list":
            out.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "table":
            rows = [b.header, ["---"] * len(b.header), *b.items]
            out.append("\n".join("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows))
        elif b.kind == "figure":
            out.append(f"![{b.text}]({Path(os.path.relpath(b.path, base)).as_posix()})\n\n*{b.text}*")
        elif b.kind == "images":
            out.append("\n\n".join(f"![{cap}]({Path(os.path.relpath(p, base)).as_posix()})\n*{cap}*"
                                   for p, cap in b.items))
    return "\n\n".join(out) + "\n"


def data_uri(path: Path) -> str:
    kind = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".svg": "image/svg+xml"}.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_cell(v) -> str:
    text = html.escape(str(v))
    for verdict in ("agrees", "partly", "differs", "not measurable"):
        if str(v) == verdict:
            return f'<span class="{verdict.replace(" ", "-")}">{text}</span>'
    return text


def to_html(doc: Doc, title: str) -> str:
    """One self-contained page: inline CSS, images as data URIs."""
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in doc.blocks:
        t = html.escape(b.text)
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{t}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{t}</p>")
        elif b.kind in ("banner", "note"):
            out.append(f"<div class='{b.kind}'>{t}</div>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in b.items)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "figure":
            out.append(f"<figure><img alt='{t}' src='{data_uri(b.path)}'><figcaption>{t}</figcaption></figure>")
        elif b.kind == "images":
            figs = "".join(f"<figure><img alt='{html.escape(c)}' src='{data_uri(p)}'>"
                           f"<figcaption>{html.escape(c)}</figcaption></figure>" for p, c in b.items)
            out.append(f"<div class='renders'>{figs}</div>")
    out.append("</body></html>")
    return "\n".join(out)
