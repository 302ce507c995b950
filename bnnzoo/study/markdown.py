"""Markdown pieces the study reports share: tables, the list of points done, the claims and their verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bnnzoo.study.claims import DECISION_RULE, UNDECIDED, Decision, decide
from bnnzoo.study.layout import Point


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def points_done(points: Sequence[Point], done: set[str]) -> str:
    """One paragraph: how many points are done, and which are missing."""
    missing = [point.name for point in points if point.name not in done]
    text = f"Points done: {len(points) - len(missing)} of {len(points)}."
    if missing:
        text += f" Not run yet (or still running): {', '.join(missing)}; the tables use the points that are done."
    return text + "\n"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, checked on one measure: treated against control, expected higher or lower."""

    text: str  # the claim, in words
    source: str  # where the paper makes it
    measure: str  # what is compared, in words
    treated: str  # the treated arm(s), in words
    control: str  # the control arm(s), in words
    treated_values: Sequence[float]
    control_values: Sequence[float]
    expected: str  # "higher" or "lower"
    digits: int = 3
    note: str = ""

    def decision(self) -> Decision:
        return decide(self.treated_values, self.control_values, self.expected)


def _number(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def _leaning(decision: Decision, expected: str) -> str:
    """For an undecided claim, which way the observed difference points."""
    if decision.verdict != UNDECIDED or math.isnan(decision.difference) or decision.difference == 0:
        return ""
    agrees = decision.difference > 0 if expected == "higher" else decision.difference < 0
    return " (the difference points the claimed way)" if agrees else " (the difference points the other way)"


def claims_section(claims: Sequence[Claim]) -> str:
    """The claims table and, in words, what the data supports, contradicts and cannot decide."""
    rows, by_verdict = [], {}
    for claim in claims:
        decision = claim.decision()
        by_verdict.setdefault(decision.verdict, []).append(claim)
        d = claim.digits
        rows.append(
            [
                claim.text,
                claim.source,
                f"{claim.measure}: {claim.treated} vs {claim.control} (expected {claim.expected})",
                _number(decision.difference, f"+.{d}f"),
                _number(decision.threshold, f".{d}f"),
                f"**{decision.verdict}**"
                + _leaning(decision, claim.expected)
                + (f"; {claim.note}" if claim.note else ""),
            ]
        )
    text = table(["claim", "paper", "comparison", "difference", "needed", "verdict"], rows)
    text += f"\n{DECISION_RULE}\n\n"
    for verdict, label in (("supports", "The data supports"), ("contradicts", "The data contradicts")):
        chosen = by_verdict.get(verdict, [])
        text += f"- {label}: " + ("; ".join(c.text for c in chosen) if chosen else "none of the claims") + ".\n"
    undecided = by_verdict.get(UNDECIDED, [])
    text += "- Cannot decide at this budget: " + ("; ".join(c.text for c in undecided) if undecided else "none") + ".\n"
    return text
