"""Progress of long work: tqdm's redrawn bar on a terminal, one plain line per tenth of the work anywhere
else (a log file, a pipe, a journal), where a redrawn bar would be thousands of lines."""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager
from typing import Any, Protocol, TextIO

from tqdm import tqdm


class Progress(Protocol):
    def update(self, n: float = 1) -> Any: ...
    def set_postfix(self, **values: Any) -> Any: ...
    def close(self) -> Any: ...
    def __enter__(self) -> Progress: ...
    def __exit__(self, *exc: object) -> Any: ...


def progress(
    total: float | None,
    desc: str,
    unit: str,
    *,
    enabled: bool = True,
    stream: TextIO | None = None,
    **bar: Any,
) -> Progress:
    """Return a progress display for `total` units of work on `stream` (stderr by default)."""
    stream = stream or sys.stderr
    if not enabled or stream.isatty() or not total:
        return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not enabled, **bar)
    return LineProgress(total, desc, unit, stream)


class LineProgress(AbstractContextManager["LineProgress"]):
    """One line at each tenth of the work, with the rate and the time left."""

    STEPS = 10

    def __init__(self, total: float, desc: str, unit: str, stream: TextIO) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.done, self.shown, self.postfix = 0.0, 0, ""
        self.started = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.done += n
        step = min(int(self.done * self.STEPS // self.total), self.STEPS)
        if step > self.shown:
            self.shown = step
            elapsed = time.monotonic() - self.started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            left = f", {(self.total - self.done) / rate:.0f} s left" if rate and step < self.STEPS else ""
            print(
                f"{self.desc}: {100 * step // self.STEPS}% ({self.done:,.0f}/{self.total:,.0f} {self.unit}), "
                f"{rate:,.0f} {self.unit}/s{left}{self.postfix}",
                file=self.stream,
                flush=True,
            )

    def set_postfix(self, **values: Any) -> None:
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        self.close()
