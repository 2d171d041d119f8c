"""Abstention on held-out questions that are really unanswerable: the confidence against a hand audit of the labels.

The answer eval's held-out questions are made by removing a question's relevant pages (its qrels) from the index. On
a knowledge base that says things twice (two TV manuals, a phone manual next to them), the question may still be
answered by a page that stays: then "held out" is a wrong label, and abstaining on it would refuse an answer the
knowledge base holds. `bench/data/samsung_heldout_audit.jsonl` is a hand audit of 80 held-out questions of the Samsung
e-manual set (`SAMSUNG_QA_DIR`, default /work/shared/eval/retrieval/samsung_emanual_qa; Apache-2.0 dataset, manual
text (c) Samsung; the audit holds ids only), drawn at random (seed 7) from those whose reference answer no remaining
page states (`still_stated`), each removed from the index alone. Each verdict reads the best remaining pages:
- "answered": a remaining page (`doc`) tells how to do, or what is, the thing asked, for the product asked about
  ("How do I do instant recording from the guide screen?" is answered by the second TV manual's section on it);
- "other_product": a remaining page answers it for the other device (a phone's brightness for a TV question);
- "unanswered": no remaining page answers it.
Audit of 2026-12-01: 24 answered, 6 other product, 50 unanswered, so about 30 % of Samsung's held-out questions
are answerable. The benchmark computes the engine's retrieval confidence (`knowledge.calibration.confidence`, the
value the abstain threshold reads before citation coverage scales it) for every answerable question and for each
audited question with its relevant pages filtered out, then prints, per threshold, the share of answerable
questions answered and the abstention in each verdict group, and the AUC of answerable against unanswered, for the
confidence and for the cross-encoder's logit alone.

`python -m bench abstention` (about 6 minutes on two CPUs: it indexes the 712 sections and retrieves each question
with and without its pages; `--quick` changes nothing).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import Report
from knowledge.calibration import NO_READING, Labelled, Signals, collect_signals, probability
from knowledge.config import KnowledgeConfig

DATA = Path(os.environ.get("SAMSUNG_QA_DIR", "/work/shared/eval/retrieval/samsung_emanual_qa"))
AUDIT = Path(__file__).parent / "data" / "samsung_heldout_audit.jsonl"
VERDICTS = ("answered", "other_product", "unanswered")
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)


def load_audit(path: Path = AUDIT) -> dict[str, str]:
    """Question id -> verdict."""
    audit = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"{path}: unknown verdict {row['verdict']!r} for {row['_id']}")
        audit[str(row["_id"])] = str(row["verdict"])
    return audit


def collect(folder: Path) -> list[Labelled]:
    """Every question's signals, as asked and with its relevant pages filtered out (blocking: indexes the folder)."""
    with tempfile.TemporaryDirectory(prefix="bench-abstention-") as tmp:
        return collect_signals(folder, KnowledgeConfig(data_dir=Path(tmp) / "data"))


def split(
    rows: Sequence[Labelled], audit: dict[str, str], value: Callable[[Signals], float]
) -> tuple[list[float], dict[str, list[float]]]:
    """(`value` of every answerable question, `value` per verdict of the audited questions held out)."""
    answerable = [value(row.evidence) for row in rows if row.kind == "answerable"]
    held_out: dict[str, list[float]] = {verdict: [] for verdict in VERDICTS}
    for row in rows:
        if row.kind == "held_out" and row.question_id in audit:
            held_out[audit[row.question_id]].append(value(row.evidence))
    return answerable, held_out


def reading(evidence: Signals) -> float:
    """The cross-encoder's logit for the best passage."""
    return NO_READING if evidence.reader is None else evidence.reader


def _share(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else float("nan")


async def run(report: Report, quick: bool) -> None:
    from sklearn.metrics import roc_auc_score

    audit = load_audit()
    rows = await asyncio.to_thread(collect, DATA)
    values = (("confidence", probability), ("reader logit alone", reading))
    splits = {name: split(rows, audit, value) for name, value in values}
    answerable, held_out = splits["confidence"]
    for verdict in VERDICTS:
        report.add(f"audited held-out: {verdict}", len(held_out[verdict]), "q")
    for name, (scores, groups) in splits.items():
        labels = [1] * len(scores) + [0] * len(groups["unanswered"])
        auc = float(roc_auc_score(labels, scores + groups["unanswered"]))
        report.add(f"AUC answerable vs unanswered ({name})", auc)
    for threshold in THRESHOLDS:
        report.add(f"t={threshold:.1f} answered (answerable)", _share([p >= threshold for p in answerable]))
        for verdict in VERDICTS:
            abstained = _share([p < threshold for p in held_out[verdict]])
            report.add(f"t={threshold:.1f} abstained ({verdict})", abstained)
        everything = [p for verdict in VERDICTS for p in held_out[verdict]]
        report.add(f"t={threshold:.1f} abstained (all audited)", _share([p < threshold for p in everything]))
