"""Answer quality of the AI tasks: runs sentiment, entities and summarize over the labelled
evaluation set in bench/quality/*.jsonl (written for this project) and scores the answers.

    .venv/bin/python bench/quality.py            # in this process, on the model SLUICE_* selects
    make bench FIGURES=quality                   # the same set through the real pipeline

The scores report, they assert nothing (the tests do not check them):

- sentiment: accuracy of the label against the labelled one (positive, negative, neutral), and
  the mean `score` of the right answers and of the wrong ones (a score worth reading is higher
  on the right ones).
- entities: micro precision, recall and F1 of the entity names found against the labelled
  ones, names compared after normalizing (case, punctuation, a leading "the"); "typed" also
  needs the kind (PERSON, ORGANIZATION, LOCATION, DATE) to match.
- summarize: the share of summaries that are shorter than the input (at most SHORTER_RATIO of
  its characters), not a copy (under COPY_SHARE of the summary's word 4-grams come verbatim from
  the input), hold every key term listed for the text (compared on crude stems), and all three
  at once. These are computable proxies: none of them checks that the summary is true.

A job that fails counts as a wrong answer (no entities, an empty summary).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

DATA = Path(__file__).resolve().parent / "quality"
TASKS = ("sentiment", "entities", "summarize")
SHORTER_RATIO = 0.6   # a summary of a 4-sentence text in 1-2 sentences fits well under this
COPY_SHARE = 0.7      # a summary with this much of it lifted word for word is a copy
NGRAM = 4

# Runs one job: (type, input) -> its result, or None when the job failed.
RunJob = Callable[[str, dict], Awaitable[dict | None]]


def openai_configured() -> bool:
    """True when the environment names an OpenAI-compatible model for the `openai` provider
    (sluice/models.py reads the same variables)."""
    env = os.environ
    return bool(env.get("SLUICE_OPENAI_BASE_URL") or env.get("SLUICE_OPENAI_API_KEY")
                or env.get("OPENAI_API_KEY"))


def openai_model_name() -> str:
    from sluice.models import ModelSettings
    return ModelSettings.from_env({**os.environ, "SLUICE_MODEL_PROVIDER": "openai"}).openai_model


def load(task_name: str) -> list[dict]:
    """Returns the labelled items of one task (bench/quality/<task>.jsonl)."""
    lines = (DATA / f"{task_name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def normalize_name(name: str) -> str:
    """An entity name as compared: lower case, words only, without a leading "the"."""
    words = _words(name)
    if words[:1] == ["the"]:
        words = words[1:]
    return " ".join(words)


def score_sentiment(items: list[dict], results: list[dict | None]) -> dict:
    right = [result["score"] for item, result in zip(items, results)
             if result is not None and result.get("label") == item["label"]]
    wrong = [result["score"] for item, result in zip(items, results)
             if result is not None and result.get("label") != item["label"]]
    return {"accuracy": len(right) / len(items), "correct": len(right), "total": len(items),
            "failed": sum(result is None for result in results),
            "score_right": sum(right) / len(right) if right else 0.0,
            "score_wrong": sum(wrong) / len(wrong) if wrong else 0.0}


def score_entities(items: list[dict], results: list[dict | None]) -> dict:
    found = matched = matched_typed = labelled = 0
    for item, result in zip(items, results):
        gold = {normalize_name(e["name"]): e["kind"] for e in item["entities"]}
        predicted = {normalize_name(e.get("text", "")): e.get("type")
                     for e in (result or {}).get("entities", [])}
        predicted.pop("", None)
        labelled += len(gold)
        found += len(predicted)
        matched += sum(1 for name in predicted if name in gold)
        matched_typed += sum(1 for name, kind in predicted.items() if gold.get(name) == kind)

    def f1(hits: int) -> tuple[float, float, float]:
        precision = hits / found if found else 0.0
        recall = hits / labelled if labelled else 0.0
        return precision, recall, (2 * precision * recall / (precision + recall)
                                   if precision + recall else 0.0)

    precision, recall, f1_name = f1(matched)
    typed_precision, typed_recall, typed_f1 = f1(matched_typed)
    return {"precision": precision, "recall": recall, "f1": f1_name, "typed_f1": typed_f1,
            "typed_precision": typed_precision, "typed_recall": typed_recall,
            "found": found, "labelled": labelled, "total": len(items),
            "failed": sum(result is None for result in results)}


def copied_share(summary: str, source: str) -> float:
    """The share of the summary's word NGRAMs that occur verbatim in `source` (1.0 for a
    summary shorter than NGRAM words that occurs whole in it)."""
    words, source_words = _words(summary), _words(source)
    if len(words) < NGRAM:
        return 1.0 if " ".join(words) in " ".join(source_words) else 0.0
    grams = [tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)]
    source_grams = {tuple(source_words[i:i + NGRAM]) for i in range(len(source_words) - NGRAM + 1)}
    return sum(g in source_grams for g in grams) / len(grams)


def holds_terms(summary: str, terms: list[str]) -> bool:
    stems = " ".join(_stem(w) for w in _words(summary))
    return all(f" {' '.join(_stem(w) for w in _words(term))} " in f" {stems} " for term in terms)


def summary_checks(summary: str, item: dict) -> dict[str, bool]:
    """Which of the checks a summary of item["text"] passes."""
    summary = summary.strip()
    checks = {"shorter": bool(summary) and len(summary) <= SHORTER_RATIO * len(item["text"]),
              "not_copy": bool(summary) and copied_share(summary, item["text"]) < COPY_SHARE,
              "key_terms": bool(summary) and holds_terms(summary, item["key_terms"])}
    checks["all"] = all(checks.values())
    return checks


def score_summaries(items: list[dict], results: list[dict | None]) -> dict:
    checks = [summary_checks((result or {}).get("summary", ""), item)
              for item, result in zip(items, results)]
    scores = {name: sum(c[name] for c in checks) / len(items)
              for name in ("shorter", "not_copy", "key_terms", "all")}
    return {**scores, "total": len(items), "failed": sum(result is None for result in results)}


SCORERS = {"sentiment": score_sentiment, "entities": score_entities,
           "summarize": score_summaries}


def job_input(task_name: str, item: dict) -> dict:
    return {"text": item["text"]}


async def evaluate(run: RunJob, tasks: tuple[str, ...] = TASKS,
                   answers: dict[str, list] | None = None) -> dict[str, dict]:
    """Runs every item of `tasks` through `run`, one at a time; returns each task's scores.
    `answers`, when given, receives each task's (input text, result) pairs."""
    scores = {}
    for task_name in tasks:
        items = load(task_name)
        results = [await run(task_name, job_input(task_name, item)) for item in items]
        if answers is not None:
            answers[task_name] = [(item["text"], result) for item, result in zip(items, results)]
        scores[task_name] = SCORERS[task_name](items, results)
    return scores


def row_cells(scores: dict[str, dict]) -> dict[str, str]:
    """Each task's scores as one line of text (for a table cell)."""
    cells = {}
    if "sentiment" in scores:
        s = scores["sentiment"]
        cells["sentiment"] = (f"accuracy {s['accuracy']:.0%} ({s['correct']}/{s['total']}), "
                              f"mean score {s['score_right']:.2f} when right, "
                              f"{s['score_wrong']:.2f} when wrong")
    if "entities" in scores:
        s = scores["entities"]
        cells["entities"] = (f"F1 {s['f1']:.2f} (P {s['precision']:.2f}, R {s['recall']:.2f}); "
                             f"typed F1 {s['typed_f1']:.2f}; {s['found']} found, "
                             f"{s['labelled']} labelled")
    if "summarize" in scores:
        s = scores["summarize"]
        cells["summarize"] = (f"all checks {s['all']:.0%}: shorter {s['shorter']:.0%}, "
                              f"not a copy {s['not_copy']:.0%}, key terms {s['key_terms']:.0%}")
    for task_name, s in scores.items():
        if s["failed"]:
            cells[task_name] += f"; {s['failed']} of {s['total']} jobs failed"
    return cells


class _Quiet:
    """The ctx a handler gets when run in this process: progress and chunks go nowhere."""

    async def progress(self, fraction: float, message: str = "") -> None:
        pass

    async def emit(self, data: Any) -> None:
        pass


async def run_in_process(task_name: str, value: dict) -> dict | None:
    from sluice import ai_tasks
    from sluice.errors import SluiceError
    try:
        return await getattr(ai_tasks, task_name)(value, _Quiet())
    except SluiceError as exc:
        print(f"{task_name} failed: {exc}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tasks", nargs="*", help=f"some of {', '.join(TASKS)} (default: all)")
    parser.add_argument("--answers", type=Path, help="write every answer to this JSON file")
    args = parser.parse_args()
    unknown = set(args.tasks) - set(TASKS)
    if unknown:
        parser.error(f"unknown task(s) {sorted(unknown)}")
    answers: dict[str, list] = {}
    scores = asyncio.run(evaluate(run_in_process, tuple(args.tasks or TASKS), answers))
    if args.answers:
        args.answers.write_text(json.dumps(answers, indent=1))
    for task_name, cell in row_cells(scores).items():
        print(f"{task_name:10} {cell}")


if __name__ == "__main__":
    main()
