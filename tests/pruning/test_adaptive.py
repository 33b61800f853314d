"""The adaptive schedule's documented decisions on scripted histories."""

from __future__ import annotations

import pytest

from bert_tickets.pruning import make_schedule


class Level:
    def __init__(self, level, target, matching=True, barrier=None):
        self.level, self.target_sparsity, self.sparsity, self.mean = level, target, target, 0.0
        self.matching, self.barrier = matching, barrier


def test_grow_after_good_levels_step_back_and_shrink_after_a_barrier_or_a_miss():
    s = make_schedule("adaptive", 0.9, barrier_scale=None)  # the absolute limit max_barrier 0.01
    h = [Level(0, 0.0)]
    assert s.next(h) == 0.2 and s.base_level(h) == 0  # initial step from dense
    h.append(Level(1, 0.2, matching=True, barrier=0.0))
    assert s.next(h) == pytest.approx(0.5) and s.base_level(h) == 1  # good: step 0.2 x 1.5 from level 1
    h.append(Level(2, 0.5, matching=True, barrier=0.05))  # matching but a barrier above 0.01
    assert s.next(h) == pytest.approx(0.2 + 0.15) and s.base_level(h) == 1  # back to level 1, step 0.3 x 0.5
    h.append(Level(3, 0.35, matching=False, barrier=0.0))  # a miss
    assert s.next(h) == pytest.approx(0.2 + 0.075) and s.base_level(h) == 1
    h.append(Level(4, 0.275, matching=True, barrier=None))  # matching, barrier unknown: good
    assert s.next(h) == pytest.approx(0.275 + 0.1125) and s.base_level(h) == 4
    h.append(Level(5, 0.3875, matching=False))
    h.append(Level(6, 0.275 + 0.05625, matching=False))
    assert s.next(h) == pytest.approx(0.275 + 0.028125)
    h.append(Level(7, 0.303125, matching=False))  # step 0.0140625 < min_step 0.025: stop
    assert s.next(h) is None and s.base_level(h) == 4


def test_it_stops_at_the_target_and_after_max_levels():
    s = make_schedule("adaptive", 0.9)
    h = [Level(0, 0.0), Level(1, 0.2), Level(2, 0.5)]
    assert s.next(h) == pytest.approx(0.9)  # 0.5 + 0.45 capped at the target
    h.append(Level(3, 0.9))
    assert s.next(h) is None  # a good level at the target
    assert make_schedule("adaptive", 0.9, max_levels=1).next([Level(0, 0.0), Level(1, 0.2)]) is None


@pytest.mark.parametrize(
    "option", [{"initial_step": 0.0}, {"step_growth": 1.0}, {"step_shrink": 1.0}, {"min_step": 0.5}, {"max_barrier": -0.1}]
)
def test_bad_options(option):
    with pytest.raises(ValueError, match="adaptive schedule: " + next(iter(option))):
        make_schedule("adaptive", 0.9, **option)


def test_each_decision_is_explained_with_the_barrier_the_limit_and_the_level_it_goes_on_from():
    s = make_schedule("adaptive", 0.9, max_barrier=0.02, barrier_scale=None)
    h = [Level(0, 0.0)]
    assert s.explain([]) is None
    assert s.explain(h).endswith("dense; step 0.2000; next level at sparsity 0.2000")
    h.append(Level(1, 0.2, matching=True, barrier=0.015))
    assert s.explain(h) == (
        "adaptive schedule after level 1 (sparsity 0.2000): matching, barrier 0.0150 <= limit 0.0200: good; "
        "step grew 0.2000 x 1.5 = 0.3000, continues from level 1; next level at sparsity 0.5000"
    )
    h.append(Level(2, 0.5, matching=True, barrier=0.05))
    assert s.explain(h) == (
        "adaptive schedule after level 2 (sparsity 0.5000): matching, barrier 0.0500 > limit 0.0200: not good; "
        "step shrank 0.3000 x 0.5 = 0.1500, stepped back to level 1 (sparsity 0.2000); next level at sparsity 0.3500"
    )
    assert s.next(h) == pytest.approx(0.35) and s.base_level(h) == 1  # what it says is what it does
    h.append(Level(3, 0.35, matching=False, barrier=0.0))
    assert "not matching (barrier 0.0000, limit 0.0200): not good; step shrank 0.1500 x 0.5 = 0.0750, stepped back to level 1" in (
        s.explain(h)
    )
    h += [Level(4, 0.275, matching=False), Level(5, 0.2375, matching=False), Level(6, 0.21875, matching=False)]
    assert s.next(h) is None and s.explain(h).endswith("stop: step 0.0094 < min_step 0.0250, the highest good level is 1 (sparsity 0.2000)")
    done = [Level(0, 0.0), Level(1, 0.2), Level(2, 0.5), Level(3, 0.9)]
    assert s.explain(done).endswith("stop: level 3 reached the target sparsity 0.9000")
    assert s.explain(done[:3]).endswith("next level at sparsity 0.9000 (capped at the target)")
    # a static schedule has nothing to explain
    assert make_schedule("linear", 0.9).explain(done) is None


def test_the_calibrated_limit_is_relative_to_the_dense_barrier_and_counts_above_a_sparsity():
    """Issue 20: limit = barrier_scale x level 0's barrier (the dense instability); barriers of
    levels below barrier_above do not count; without a dense barrier only matching decides."""
    s = make_schedule("adaptive", 0.9)  # barrier_scale 1.5 by default
    h = [Level(0, 0.0, barrier=0.026)]
    assert s.limit(h) == pytest.approx(0.039)
    h.append(Level(1, 0.2, matching=True, barrier=0.03))  # above the absolute 0.01, within 1.5 x 0.026
    assert s.next(h) == pytest.approx(0.5) and s.base_level(h) == 1
    h.append(Level(2, 0.5, matching=True, barrier=0.04))  # above 0.039: a step back
    assert s.next(h) == pytest.approx(0.35) and s.base_level(h) == 1
    assert "limit 0.0390 = 1.5 x the dense barrier 0.0260" in s.explain(h) and "stepped back to level 1" in s.explain(h)
    above = make_schedule("adaptive", 0.9, barrier_above=0.6)
    assert above.next(h) == pytest.approx(0.9) and above.base_level(h) == 2  # 0.5 < 0.6: the barrier does not count; 0.5 + 0.45 capped
    unknown = make_schedule("adaptive", 0.9)
    assert unknown.next([Level(0, 0.0), Level(1, 0.2, matching=True, barrier=0.5)]) == pytest.approx(
        0.5
    )  # no dense barrier: matching decides
    with pytest.raises(ValueError, match="barrier_scale must be > 0"):
        make_schedule("adaptive", 0.9, barrier_scale=0.0)
