"""Measuring grouping against an expectation: co-grouped pairs, precision and recall.

A grouping is judged by its unordered file pairs that share a group: a 3-member group
is 3 pairs. That counts a missed sidecar or a wrongly joined decoy once per file it
touches, which is what a user notices, and makes groups of different shapes comparable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.grouping.rules import GroupResult

Pair = frozenset[str]


def pairs_of_sets(groups: Iterable[Iterable[str]]) -> set[Pair]:
    """All unordered pairs of paths that share a set (expected groups as path sets)."""
    out: set[Pair] = set()
    for g in groups:
        ps = sorted(set(g))
        out.update(frozenset((a, b)) for i, a in enumerate(ps) for b in ps[i + 1 :])
    return out


def grouped_pairs(results: Iterable[GroupResult]) -> set[Pair]:
    """All unordered pairs of paths that share a result group."""
    return pairs_of_sets(g.paths for g in results)


@dataclass(frozen=True, slots=True)
class Score:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


def score(found: set[Pair], expected: set[Pair]) -> Score:
    """Pair-level precision/recall of ``found`` against ``expected``."""
    tp = len(found & expected)
    return Score(tp, len(found - expected), len(expected - found))
