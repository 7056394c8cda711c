"""How much a queue's labelers agree: Cohen's kappa (two answers per item), Fleiss' (more).

Pure functions over answers, so the admin page, the export and the tests compute the same
numbers. Answers are compared as canonical JSON (`"cat"` and `"cat"` agree; `1` and `"1"` do
not). Only items with `overlap` answers (done items) count toward kappa; every item with two
or more answers that are not all the same is a disagreement.

- overlap 2: Cohen's kappa, the first answer of each item (by time) as rater A and the second
  as rater B: kappa = (p_o - p_e) / (1 - p_e), p_e from the two raters' own marginals.
- overlap 3 or more: Fleiss' kappa over the done items, `overlap` ratings each.

Kappa is None when it is undefined: no done items, or every answer in one category (p_e = 1).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Agreement:
    """A queue's agreement: the method, kappa, observed agreement and the disputed items."""

    method: str  # "cohen" | "fleiss" | "none" (overlap 1: one answer per item)
    kappa: float | None
    observed: float | None  # share of agreeing pairs of answers over the done items
    items: int  # done items the figures are computed over
    disagreements: list[Any] = field(default_factory=list)  # item ids, in queue order


def category(answer: Any) -> str:
    """An answer as the text it is compared by."""
    return json.dumps(answer, sort_keys=True)


def agreement(answers: Mapping[Any, Sequence[Any]], overlap: int) -> Agreement:
    """Agreement of `answers` ({item: its answers in time order}) for a queue's `overlap`."""
    disagreements = [
        item for item, given in answers.items()
        if len(given) >= 2 and len({category(a) for a in given}) > 1
    ]
    if overlap < 2:
        return Agreement("none", None, None, 0, disagreements)
    rated = [[category(a) for a in given[:overlap]] for given in answers.values()
             if len(given) >= overlap]
    if overlap == 2:
        kappa, observed = cohen_kappa([(pair[0], pair[1]) for pair in rated])
        return Agreement("cohen", kappa, observed, len(rated), disagreements)
    kappa, observed = fleiss_kappa(rated)
    return Agreement("fleiss", kappa, observed, len(rated), disagreements)


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> tuple[float | None, float | None]:
    """Cohen's kappa and the observed agreement of two raters' (a, b) answers."""
    if not pairs:
        return None, None
    total = len(pairs)
    observed = sum(a == b for a, b in pairs) / total
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (total * total)
    if expected >= 1.0:
        return None, observed
    return (observed - expected) / (1.0 - expected), observed


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> tuple[float | None, float | None]:
    """Fleiss' kappa and the mean per-item agreement of items with n ratings each (n >= 2)."""
    if not ratings:
        return None, None
    raters = len(ratings[0])
    if raters < 2 or any(len(r) != raters for r in ratings):
        raise ValueError("Fleiss' kappa needs the same number (2 or more) of ratings per item")
    items = len(ratings)
    totals: Counter[str] = Counter()
    per_item = 0.0
    for given in ratings:
        counts = Counter(given)
        totals.update(counts)
        per_item += (sum(n * n for n in counts.values()) - raters) / (raters * (raters - 1))
    observed = per_item / items
    expected = sum((n / (items * raters)) ** 2 for n in totals.values())
    if expected >= 1.0:
        return None, observed
    return (observed - expected) / (1.0 - expected), observed
