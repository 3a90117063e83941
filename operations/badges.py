"""Status badges, one colour per state across every model, so "failed" looks the same on
documents, imports, profiles, reports and dead letters."""

from __future__ import annotations

from django.utils.html import format_html

TONES = {
    "pending": "#777",
    "never": "#777",
    "queued": "#6c757d",
    "processing": "#0d6efd",
    "done": "#198754",
    "active": "#198754",
    "replayed": "#198754",
    "failed": "#dc3545",
    "dead": "#dc3545",
    "cancelled": "#6f42c1",
    "discarded": "#6f42c1",
    "inactive": "#6f42c1",
    "duplicate": "#b08800",
}


def badge(status: str, label: str, *, pk: int | None = None) -> str:
    """A coloured pill; with `pk`, live pages (progress.js) can update it in place."""
    return format_html(
        '<span class="docflow-status"{} style="background:{};color:#fff;padding:2px 6px;'
        'border-radius:8px;font-size:11px;white-space:nowrap">{}</span>',
        format_html(' data-status-id="{}"', pk) if pk is not None else "",
        TONES.get(str(status), "#777"),
        label,
    )
