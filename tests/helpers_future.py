"""A tool module with postponed annotations: helpers annotated with host-only types."""

from __future__ import annotations

from levrt import Cr, ctx, remote


def label(host: str, cr: Cr | None = None) -> str:
    return f"host={host}"


def annotated(host: str) -> Cr:
    @remote
    def entry() -> None:
        ctx.set(label=label(host))
    return Cr("localhost/test:latest", entry=entry())
