"""Each bench's section of docs/PERFORMANCE.md, replaced whole by the bench that owns it."""

from __future__ import annotations

import subprocess
import time

from harness.database import ROOT
from harness.log import say


def write_section(name: str, report: str) -> None:
    """Replace (or append) the section of docs/PERFORMANCE.md written by ``name``."""
    import re

    path = ROOT / "docs" / "PERFORMANCE.md"
    text = path.read_text() if path.exists() else (
        "# Performance\n\nEvery figure comes from a script in `bench/`, beside its baseline "
        "from the same run, on this project's 2-core machine.\n"
    )  # fmt: skip
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{report}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text)


def write_section_when_free(name: str, report: str, other: str) -> None:
    """Write ``name``'s section once the bench ``other`` (which rewrites its own section of
    the same file when it ends) is not running, so that neither write loses the other's."""
    while subprocess.run(["pgrep", "-f", other], capture_output=True).returncode == 0:
        say(f"{other} is running: waiting for it to end before writing the docs")
        time.sleep(30)
    write_section(name, report)
