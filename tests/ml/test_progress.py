"""Progress: a redrawn bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from ml.progress import LineProgress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_tenth_with_rate_and_time_left() -> None:
    log = io.StringIO()
    with progress(1000, "importing", "rows", stream=log) as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(1000):
            bar.update(1)
        bar.set_postfix(loss="1.2345")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines] == [
        str(p) for p in range(10, 101, 10)
    ]
    assert lines[0].startswith("importing: 10% (100/1,000 rows), ") and "s left" in lines[0]
    assert lines[-1].startswith("importing: 100% (1,000/1,000 rows)") and "left" not in lines[-1]


def test_a_big_step_prints_once() -> None:
    log = io.StringIO()
    bar = progress(10, "train", "steps", stream=log)
    bar.set_postfix(epoch=2)
    bar.update(7)
    bar.update(3)
    assert log.getvalue().splitlines()[0].startswith("train: 70% (7/10 steps)")
    assert log.getvalue().splitlines()[0].endswith(", epoch 2")
    assert len(log.getvalue().splitlines()) == 2


def test_a_terminal_gets_the_redrawn_bar_and_disabled_prints_nothing() -> None:
    terminal = Terminal()
    with progress(100, "importing", "rows", stream=terminal) as bar:
        bar.update(100)
    assert "\r" in terminal.getvalue()
    quiet = io.StringIO()
    with progress(100, "importing", "rows", stream=quiet, enabled=False) as bar:
        bar.update(100)
    assert quiet.getvalue() == ""
