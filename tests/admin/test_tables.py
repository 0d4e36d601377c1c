"""The compare page's change: B against A, by each figure's direction."""

from __future__ import annotations

import pytest

from admin.views import change_of


def test_change_is_b_against_a_and_better_by_the_metric_s_direction() -> None:
    hr = change_of("hr@10", 0.40, 0.42)
    assert hr is not None and hr.verdict == "better" and hr.improved
    assert hr.delta == pytest.approx(0.02) and hr.relative == pytest.approx(0.05)
    ndcg = change_of("valid_ndcg@10", 0.25, 0.20)
    assert ndcg is not None and ndcg.verdict == "worse" and ndcg.improved is False
    assert ndcg.relative == pytest.approx(-0.2)
    loss = change_of("loss", 5.0, 4.0)  # lower is better
    assert loss is not None and loss.verdict == "better" and loss.relative == pytest.approx(-0.2)
    slower = change_of("train_seconds", 10.0, 12.0)
    assert slower is not None and slower.verdict == "slower" and slower.improved is False
    from_zero = change_of("recall@20", 0.0, 0.1)
    assert from_zero is not None and from_zero.relative is None and from_zero.verdict == "better"
    same = change_of("hr@10", 0.41670, 0.41672)  # equal at the four decimals shown
    assert same is not None and same.verdict == "no change" and same.improved is None
    assert change_of("hr@10", None, 0.4) is None
