"""Words the reports share."""

from __future__ import annotations


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"
