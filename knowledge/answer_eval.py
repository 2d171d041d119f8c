"""The answer eval: does the engine cite the right source, state the fact, and abstain when it cannot know?

Over a BEIR folder with `answers.jsonl`, each question goes through the real engine (`answer()`, the same path as a
customer's question) on a temporary index. Scores:
- source hit: the answer cites a relevant document (an abstention is a miss);
- fact: at least 80 % of the reference answer's content words appear in the answer text;
- held-out abstention: with `holdout` > 0, the answering documents of that share of questions are left out of the
  index, so those questions (and any other whose documents all went with them) become unanswerable, and the engine
  should abstain on them; questions in the folder's `unanswerable.jsonl` count here too. A held-out question whose
  reference answer is still stated by a page left in the index (`still_stated`: a corpus of several manuals of one
  product line repeats sections) is not unanswerable: it is scored apart ("restated": abstained or the fact given),
  and neither its abstention nor its answer counts towards held-out abstention;
- off-topic abstention: on `OFF_TOPIC_QUESTIONS`, general-knowledge and other-product questions;
- confidently wrong: an in-domain answer (answerable, held out or restated) that is not flagged (neither abstained
  nor below the low-confidence threshold, where the core offers a person) and lacks the fact.

With `noise` (a seed), every question, the unanswerable and off-topic ones too, is first wrapped in a customer-style
message (`knowledge.noise`: greeting, introduction, story, sign-off), so the same figures measure long, noisy
questions; wrapping the unanswerable ones as well keeps "answer everything" from looking like a fix.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from bot.messages import Answer
from knowledge.beir import BeirSet, EvalIndex, load_beir, temporary_index
from knowledge.config import KnowledgeConfig
from knowledge.noise import wrap

FACT_SHARE = 0.8
_WORD = re.compile(r"[a-z0-9]+")

OFF_TOPIC_QUESTIONS = (
    "What is the capital of Australia?",
    "Who wrote the novel Pride and Prejudice?",
    "How many moons does Jupiter have?",
    "What is the boiling point of water at high altitude?",
    "Can you recommend a good recipe for banana bread?",
    "What time does the football final start on Sunday?",
    "How do I file my income tax return?",
    "What is the best way to learn Spanish quickly?",
    "Who won the Nobel Prize in Physics last year?",
    "How do I change the oil in a Toyota Corolla?",
    "What are the symptoms of the flu?",
    "How do I renew my passport?",
    "What is the exchange rate between the euro and the yen?",
    "How many calories are in an avocado?",
    "Can you write me a poem about the sea?",
    "How do I set up a new Kubernetes cluster on AWS?",
    "What is the airspeed velocity of an unladen swallow?",
    "How do I unclog a kitchen sink?",
    "Which hiking boots are best for winter?",
    "How do I book a table at an Italian restaurant nearby?",
    "How do I configure a VLAN on a Cisco switch?",
    "What is the warranty on a Dyson vacuum cleaner?",
    "How do I cancel my gym membership?",
    "How do I transfer money with PayPal to a friend abroad?",
    "Why is my dishwasher leaving white spots on glasses?",
    "How do I reset a forgotten Instagram password?",
    "What is the release date of the next iPhone?",
    "How do I train my puppy to stop biting?",
    "Which vitamins should I take during pregnancy?",
    "How do I apply for a mortgage with a low credit score?",
)


def content_words(text: str) -> set[str]:
    """Lower-cased alphanumeric words of two or more characters, without English stop words."""
    return {word for word in _WORD.findall(text.lower()) if len(word) > 1 and word not in ENGLISH_STOP_WORDS}


def _states(expected: set[str], words: set[str]) -> bool:
    """At least `FACT_SHARE` of a reference answer's content words (`expected`, none: never) are among `words`."""
    return bool(expected) and len(expected & words) >= FACT_SHARE * len(expected)


def has_fact(answer_text: str, reference: str) -> bool:
    """At least `FACT_SHARE` of the reference answer's content words occur in the answer."""
    return _states(content_words(reference), content_words(answer_text))


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """One question of the answer eval."""

    question_id: str
    kind: str  # "answerable" | "held_out" | "restated" (held out, but another page states the answer) | "off_topic"
    abstained: bool
    low_confidence: bool
    confidence: float
    source_hit: bool
    fact: bool
    cited: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return self.abstained or self.low_confidence

    @property
    def confidently_wrong(self) -> bool:
        return self.kind != "off_topic" and not self.flagged and not self.fact


@dataclass(frozen=True, slots=True)
class AnswerEvalReport:
    """Rates over the questions (see the module docstring) and the per-question results."""

    summary: Mapping[str, float]
    results: tuple[QuestionResult, ...] = field(repr=False)

    def as_dict(self, with_questions: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"summary": dict(self.summary), "reliability": reliability(self.results)}
        if with_questions:
            data["questions"] = [asdict(result) for result in self.results]
        return data


def _share(values: Sequence[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def summarise(results: Sequence[QuestionResult]) -> dict[str, float]:
    answerable = [r for r in results if r.kind == "answerable"]
    held_out = [r for r in results if r.kind == "held_out"]
    restated = [r for r in results if r.kind == "restated"]
    off_topic = [r for r in results if r.kind == "off_topic"]
    in_domain = answerable + held_out + restated
    return {
        "answerable": len(answerable),
        "held_out": len(held_out),
        "restated": len(restated),
        "off_topic": len(off_topic),
        "source_hit": _share([r.source_hit for r in answerable]),
        "fact_rate": _share([r.fact for r in answerable]),
        "answered": _share([not r.abstained for r in answerable]),
        "held_out_abstention": _share([r.abstained for r in held_out]),
        "restated_safe": _share([r.abstained or r.fact for r in restated]),
        "off_topic_abstention": _share([r.abstained for r in off_topic]),
        "confidently_wrong": _share([r.confidently_wrong for r in in_domain]),
    }


def reliability(results: Sequence[QuestionResult], width: float = 0.1) -> list[dict[str, float]]:
    """The reliability curve of the in-domain questions (answerable and held out): per confidence bin, how many
    and what share got the fact (a held-out question never can) and the right source."""
    bins: dict[int, list[QuestionResult]] = {}
    for result in results:
        if result.kind != "off_topic":
            bins.setdefault(min(int(result.confidence / width), round(1 / width) - 1), []).append(result)
    return [
        {
            "from": round(number * width, 2),
            "questions": len(inside),
            "fact": _share([r.fact for r in inside]),
            "source_hit": _share([r.source_hit for r in inside]),
        }
        for number, inside in sorted(bins.items())
    ]


def page_words(corpus: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Document id -> the content words of its title and text, the words `stated_by` looks an answer up in."""
    return {
        str(doc.get("_id", doc.get("id", ""))): content_words(f"{doc.get('title', '')}\n{doc.get('text', '')}")
        for doc in corpus
    }


def stated_by(pages: Mapping[str, set[str]], reference: str, removed: Collection[str]) -> bool:
    """Whether one page not in `removed` holds at least `FACT_SHARE` of the reference answer's content words (the
    test `has_fact` applies to an answer)."""
    expected = content_words(reference)
    return any(_states(expected, words) for doc_id, words in pages.items() if doc_id not in removed)


def still_stated(
    corpus: Sequence[Mapping[str, Any]], removed: set[str], answers: Mapping[str, str], held_out: set[str]
) -> set[str]:
    """The held-out questions whose reference answer a page left in the index still states (`stated_by`: a corpus
    of several manuals of one product line repeats sections)."""
    pages = page_words(corpus)
    return {query_id for query_id in held_out if stated_by(pages, answers.get(query_id, ""), removed)}


def held_out_split(qrels: Mapping[str, Mapping[str, int]], fraction: float, seed: int = 0) -> tuple[set[str], set[str]]:
    """(documents to leave out, questions left without any relevant document) for a holdout `fraction`."""
    if fraction <= 0:
        return set(), set()
    query_ids = sorted(qrels)
    chosen = random.Random(seed).sample(query_ids, max(1, round(fraction * len(query_ids))))
    removed = {doc for query_id in chosen for doc in qrels[query_id]}
    orphaned = {query_id for query_id in query_ids if set(qrels[query_id]) <= removed}
    return removed, orphaned


def with_noise(data: BeirSet, seed: int) -> tuple[BeirSet, tuple[str, ...]]:
    """(`data` with every question and unanswerable question wrapped in customer-style noise, the off-topic
    questions wrapped the same way), from one generator seeded with `seed`, in file order."""
    rng = random.Random(seed)
    queries = {query_id: wrap(text, rng) for query_id, text in data.queries.items()}
    unanswerable = {query_id: wrap(text, rng) for query_id, text in data.unanswerable.items()}
    off_topic = tuple(wrap(text, rng) for text in OFF_TOPIC_QUESTIONS)
    return replace(data, queries=queries, unanswerable=unanswerable), off_topic


async def run_answers_eval(
    folder: Path, config: KnowledgeConfig, holdout: float = 0.0, seed: int = 0, noise: int | None = None
) -> AnswerEvalReport:
    """Ask the engine every question of the folder (and the off-topic list) and score the answers; with `noise`,
    each question wrapped in customer-style noise seeded by it."""
    data = load_beir(folder)
    if not data.answers:
        raise ValueError(f"{folder} has no answers.jsonl")
    off_topic: Sequence[str] = OFF_TOPIC_QUESTIONS
    if noise is not None:
        data, off_topic = with_noise(data, noise)
    removed, held_out = held_out_split(data.qrels, holdout, seed)
    restated = still_stated(data.corpus, removed, data.answers, held_out)
    with temporary_index(data.corpus, config, leave_out=removed) as index:
        results = await answer_questions(index, data, config, removed, held_out, restated, off_topic)
    return AnswerEvalReport(summarise(results), tuple(results))


async def answer_questions(
    index: EvalIndex,
    data: BeirSet,
    config: KnowledgeConfig,
    removed: set[str],
    held_out: set[str],
    restated: Collection[str] = (),
    off_topic_questions: Sequence[str] = OFF_TOPIC_QUESTIONS,
) -> list[QuestionResult]:
    """Every question of `data` (answerable or held out), its unanswerable ones, then the off-topic list."""
    results: list[QuestionResult] = []
    for query_id, text in data.queries.items():
        answer = await index.service.answer(text)
        cited = _cited_documents(answer, index.chunk_documents)
        relevant = set(data.qrels[query_id]) - removed
        kind = "restated" if query_id in restated else "held_out" if query_id in held_out else "answerable"
        results.append(_result(query_id, kind, answer, config, relevant, cited, data.answers.get(query_id, "")))
    unanswerable = [(query_id, text) for query_id, text in data.unanswerable.items()]
    off_topic = [(f"off-topic-{number}", text) for number, text in enumerate(off_topic_questions, 1)]
    for kind, questions in (("held_out", unanswerable), ("off_topic", off_topic)):
        for query_id, text in questions:
            answer = await index.service.answer(text)
            cited = _cited_documents(answer, index.chunk_documents)
            results.append(_result(query_id, kind, answer, config, set(), cited, ""))
    return results


def _cited_documents(answer: Answer, chunk_documents: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(chunk_documents.get(c.chunk_id, c.source) for c in answer.citations))


def _result(
    query_id: str,
    kind: str,
    answer: Answer,
    config: KnowledgeConfig,
    relevant: set[str],
    cited: tuple[str, ...],
    reference: str,
) -> QuestionResult:
    return QuestionResult(
        question_id=query_id,
        kind=kind,
        abstained=answer.abstained,
        low_confidence=not answer.abstained and answer.confidence < config.low_confidence_threshold,
        confidence=answer.confidence,
        source_hit=not answer.abstained and bool(relevant & set(cited)),
        fact=not answer.abstained and has_fact(answer.text, reference),
        cited=cited,
    )


def run_answers_eval_blocking(
    folder: Path, config: KnowledgeConfig, holdout: float = 0.0, seed: int = 0, noise: int | None = None
) -> AnswerEvalReport:
    """`run_answers_eval` from synchronous code (the CLI)."""
    return asyncio.run(run_answers_eval(folder, config, holdout, seed, noise))


_LABELS = {
    "source_hit": "source hit (answerable)",
    "fact_rate": "fact in answer (answerable)",
    "answered": "answered (answerable)",
    "held_out_abstention": "abstained (held out)",
    "restated_safe": "abstained or fact (restated)",
    "off_topic_abstention": "abstained (off-topic)",
    "confidently_wrong": "confidently wrong (in-domain)",
}


def format_answer_report(report: AnswerEvalReport) -> str:
    """A two-column table of the rates, with the question counts on top."""
    s = report.summary
    counts = (
        f"{s['answerable']:.0f} answerable, {s['held_out']:.0f} held out (+ {s['restated']:.0f} restated elsewhere), "
        f"{s['off_topic']:.0f} off-topic"
    )
    lines = [f"questions: {counts}"]
    lines += [f"{label:<32}{s[key]:>8.3f}" for key, label in _LABELS.items() if key != "restated_safe" or s["restated"]]
    lines.append("reliability (in-domain): confidence from -> questions, share with the fact, share citing a source")
    lines += [
        f"  {row['from']:.1f}  {row['questions']:>4.0f}  {row['fact']:.2f}  {row['source_hit']:.2f}"
        for row in reliability(report.results)
    ]
    return "\n".join(lines)
