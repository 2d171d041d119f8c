"""Refitting the confidence model in one step: `supportbot eval fit-confidence DIR [DIR...]`.

Collects labelled signals over each BEIR folder (`knowledge.calibration.collect_signals`), fits the logistic model
on half A of every folder's questions (the smaller folders weighted up, see `balanced_weights`) and scores half B:
AUC of "the best document is a relevant one" against everything else and of answerable against unanswerable
questions, the abstention trade-off per threshold, and a reliability table (confidence bin -> share correct).
It prints the constants to paste into `knowledge/calibration.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from knowledge.answer_eval import OFF_TOPIC_QUESTIONS
from knowledge.calibration import (
    FEATURES,
    READER_FEATURES,
    Labelled,
    balanced_weights,
    collect_signals,
    fit_confidence,
    probability,
)
from knowledge.config import KnowledgeConfig

THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True, slots=True)
class TradeOff:
    """What one abstain threshold does on a held-out half."""

    threshold: float
    answered: float  # share of answerable questions not abstained on
    correct_among_answered: float  # share of those whose best document is a relevant one
    held_out_abstention: float
    off_topic_abstention: float


@dataclass(frozen=True, slots=True)
class FolderScore:
    """The fitted model on one folder's held-out half."""

    folder: str
    questions: int
    auc_correct: float  # best document relevant vs everything else
    auc_answerable: float  # answerable vs held out and off-topic
    trade_off: tuple[TradeOff, ...]
    reliability: tuple[tuple[float, int, float], ...]  # (bin start, questions, share correct)


@dataclass(frozen=True, slots=True)
class ConfidenceFit:
    coefficients: tuple[float, ...]
    intercept: float
    scores: tuple[FolderScore, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"features": list(self.features)}

    @property
    def features(self) -> tuple[str, ...]:
        return READER_FEATURES if len(self.coefficients) == len(READER_FEATURES) else FEATURES


def fit_folders(folders: Sequence[Path], config: KnowledgeConfig) -> ConfidenceFit:
    """Fit on half A of every folder, score half B of each (blocking: indexes every folder)."""
    collected = {folder: collect_signals(folder, config, OFF_TOPIC_QUESTIONS) for folder in folders}
    train = [[row for row in rows if row.half == "a"] for rows in collected.values()]
    coefficients, intercept = fit_confidence([row for group in train for row in group], balanced_weights(train))
    scores = tuple(
        score_half(str(folder), [row for row in rows if row.half == "b"], coefficients, intercept)
        for folder, rows in collected.items()
    )
    return ConfidenceFit(coefficients, intercept, scores)


def score_half(name: str, rows: Sequence[Labelled], coefficients: Sequence[float], intercept: float) -> FolderScore:
    from sklearn.metrics import roc_auc_score

    p = [probability(row.evidence, coefficients, intercept) for row in rows]
    correct = [int(row.correct) for row in rows]
    answerable = [int(row.kind == "answerable") for row in rows]

    def auc(labels: list[int]) -> float:
        return round(float(roc_auc_score(labels, p)), 3) if 0 < sum(labels) < len(labels) else float("nan")

    def share(values: list[bool]) -> float:
        return round(sum(values) / len(values), 3) if values else float("nan")

    trade_off = []
    for t in THRESHOLDS:
        answered = [row for row, q in zip(rows, p, strict=True) if row.kind == "answerable" and q >= t]
        trade_off.append(
            TradeOff(
                threshold=t,
                answered=share(
                    [
                        row.kind == "answerable" and q >= t
                        for row, q in zip(rows, p, strict=True)
                        if row.kind == "answerable"
                    ]
                ),
                correct_among_answered=share([row.correct for row in answered]),
                held_out_abstention=share([q < t for row, q in zip(rows, p, strict=True) if row.kind == "held_out"]),
                off_topic_abstention=share([q < t for row, q in zip(rows, p, strict=True) if row.kind == "off_topic"]),
            )
        )
    bins = []
    for start in range(10):
        inside = [
            row.correct
            for row, q in zip(rows, p, strict=True)
            if start / 10 <= q < (start + 1) / 10 or (start == 9 and q == 1.0)
        ]
        if inside:
            bins.append((start / 10, len(inside), share(inside)))
    return FolderScore(name, len(rows), auc(correct), auc(answerable), tuple(trade_off), tuple(bins))


def format_confidence_fit(fit: ConfidenceFit) -> str:
    """The constants to paste, then per folder: AUCs, the trade-off and the reliability table."""
    prefix = "READER_" if fit.features == READER_FEATURES else ""
    lines = [
        f"{prefix}FEATURES = {fit.features!r}",
        f"{prefix}COEFFICIENTS = {fit.coefficients!r}",
        f"{prefix}INTERCEPT = {fit.intercept!r}",
    ]
    for score in fit.scores:
        lines += [
            "",
            f"{score.folder} (half B, {score.questions} retrievals): AUC correct {score.auc_correct:.3f}, "
            f"answerable vs not {score.auc_answerable:.3f}",
            "threshold  answered  correct|answered  held-out abstained  off-topic abstained",
        ]
        lines += [
            f"{t.threshold:>9.2f}  {t.answered:>8.3f}  {t.correct_among_answered:>16.3f}  "
            f"{t.held_out_abstention:>18.3f}  {t.off_topic_abstention:>19.3f}"
            for t in score.trade_off
        ]
        lines.append("reliability: " + ", ".join(f"{b:.1f}+: {s:.2f} of {n}" for b, n, s in score.reliability))
    return "\n".join(lines)
