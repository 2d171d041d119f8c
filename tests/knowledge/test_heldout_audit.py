"""The hand audit of held-out labels that `python -m bench abstention` reads is well formed: known verdicts, an
answering page named for every question a remaining page answers, no question twice."""

import json
from pathlib import Path

import pytest

from bench.bench_abstention import AUDIT, load_audit


def test_the_audit_names_a_page_for_each_answered_question_and_no_question_twice() -> None:
    rows = [json.loads(line) for line in AUDIT.read_text().splitlines()]
    verdicts = load_audit()
    assert len(verdicts) == len(rows) == 80
    for row in rows:
        assert bool(row["doc"]) == (row["verdict"] != "unanswered"), row


def test_an_unknown_verdict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"_id": "q1", "verdict": "maybe", "doc": ""}\n')
    with pytest.raises(ValueError, match="unknown verdict 'maybe' for q1"):
        load_audit(path)
