"""Agreement on fixed answers equals the values worked out by hand below."""

from __future__ import annotations

import pytest

from runtime.store.agreement import agreement, cohen_kappa, fleiss_kappa


def test_cohen_kappa_of_two_answers_per_item() -> None:
    # 10 items: yes/yes x4, no/no x3, yes/no x2, no/yes x1.
    # p_o = 7/10. Rater A says yes 6 times, B 5 times: p_e = .6*.5 + .4*.5 = .5.
    # kappa = (.7 - .5) / (1 - .5) = 0.4
    answers = {
        i: pair for i, pair in enumerate(
            [["yes", "yes"]] * 4 + [["no", "no"]] * 3 + [["yes", "no"]] * 2 + [["no", "yes"]]
        )
    }
    result = agreement(answers, overlap=2)
    assert result.method == "cohen" and result.items == 10
    assert result.kappa == pytest.approx(0.4)
    assert result.observed == pytest.approx(0.7)
    assert result.disagreements == [7, 8, 9]


def test_fleiss_kappa_of_three_answers_per_item() -> None:
    # per item P_i: aaa 1, aab 1/3, bbb 1, abb 1/3 -> mean 2/3; p_a = p_b = 1/2 -> P_e = 1/2.
    # kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3
    answers = {"i1": ["a", "a", "a"], "i2": ["a", "a", "b"], "i3": ["b", "b", "b"],
               "i4": ["a", "b", "b"], "i5": ["a", "b"]}  # i5 is not done: not counted
    result = agreement(answers, overlap=3)
    assert result.method == "fleiss" and result.items == 4
    assert result.kappa == pytest.approx(1 / 3)
    assert result.observed == pytest.approx(2 / 3)
    assert result.disagreements == ["i2", "i4", "i5"]


def test_kappa_is_undefined_without_done_items_or_with_one_category() -> None:
    assert cohen_kappa([]) == (None, None)
    assert cohen_kappa([("a", "a"), ("a", "a")]) == (None, 1.0)
    assert fleiss_kappa([["a", "a", "a"]]) == (None, 1.0)
    assert agreement({1: ["x"]}, overlap=1).method == "none"
    # answers compare as JSON: 1 and "1" differ
    assert agreement({1: [1, "1"]}, overlap=2).observed == 0.0
    assert agreement({1: [1, "1"]}, overlap=2).disagreements == [1]
