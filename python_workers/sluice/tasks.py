"""Built-in tasks, served by `sluice-worker` when no module is named: echo, sleep, fail and
text_stats (a LangChain runnable chain). sleep and text_stats declare their input as a pydantic
model (registry.py, typed inputs); echo takes anything, and fail anything too (null included),
so they stay untyped. The handlers keep their own checks for direct calls with plain values.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

from langchain_core.runnables import RunnableLambda, RunnableParallel
from pydantic import BaseModel, Field

from .errors import NonRetryableError
from .registry import as_plain, task

# ---- echo, sleep, fail: the pipeline's own test tasks ---------------------------------------


@task("echo")
async def echo(value: Any, ctx) -> Any:
    """Returns the input unchanged."""
    return value


SLEEP_STEPS = 10  # progress events a sleep job sends on its way
MAX_SLEEP_MS = 24 * 3600 * 1000


class SleepInput(BaseModel):
    """sleep's input."""

    ms: int = Field(ge=0, le=MAX_SLEEP_MS, description="milliseconds to sleep")


@task("sleep")
async def sleep(value: SleepInput, ctx) -> dict:
    """Input {"ms": N}: sleeps N milliseconds, reporting progress 10 times; returns {"slept_ms": N}."""
    value = as_plain(value)
    ms = value.get("ms") if isinstance(value, dict) else None
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= MAX_SLEEP_MS:
        raise NonRetryableError(
            f'sleep needs input {{"ms": N}} with N an integer in 0..{MAX_SLEEP_MS}, got {value!r}')
    for step in range(1, SLEEP_STEPS + 1):
        await asyncio.sleep(ms / SLEEP_STEPS / 1000)
        await ctx.progress(step / SLEEP_STEPS, f"slept {ms * step // SLEEP_STEPS} of {ms} ms")
    return {"slept_ms": ms}


@task("fail")
async def fail(value: Any, ctx) -> None:
    """Always fails. Input (optional) {"message": str, "retryable": bool}, default retryable."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise NonRetryableError(f'fail takes {{"message": str, "retryable": bool}}, got {value!r}')
    message = value.get("message", "failed on purpose")
    retryable = value.get("retryable", True)
    if not isinstance(message, str) or not isinstance(retryable, bool):
        raise NonRetryableError('fail: "message" must be a str and "retryable" a bool')
    if not retryable:
        raise NonRetryableError(message)
    raise RuntimeError(message)


# ---- text_stats: a LangChain chain ------------------------------------------------------------

TOP_WORDS = 5
_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"[.!?…]+")


def _text_of(value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        raise NonRetryableError(f'text_stats needs input {{"text": str}}, got {value!r:.200}')
    return value["text"]


def _sentences(text: str) -> int:
    # A sentence is a stretch of text holding a word, ended by . ! ? … or the end of the text.
    return sum(1 for part in _SENTENCE_END.split(text) if _WORD.search(part))


def _top_words(words: list[str]) -> list[list[Any]]:
    # Most frequent first; ties alphabetically, so the result is deterministic.
    counts = Counter(words)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [[word, count] for word, count in ranked[:TOP_WORDS]]


def _with_words(text: str) -> dict:
    return {"text": text, "words": _WORD.findall(text.lower())}


text_stats_chain = (
    RunnableLambda(_text_of, name="validate")
    | RunnableLambda(_with_words, name="tokenize")
    | RunnableParallel(
        words=RunnableLambda(lambda d: len(d["words"]), name="count_words"),
        characters=RunnableLambda(lambda d: len(d["text"]), name="count_characters"),
        sentences=RunnableLambda(lambda d: _sentences(d["text"]), name="count_sentences"),
        top_words=RunnableLambda(lambda d: _top_words(d["words"]), name="top_words"),
    )
)


class TextInput(BaseModel):
    """text_stats's input."""

    text: str = Field(description="the text to count")


@task("text_stats")
async def text_stats(value: TextInput, ctx) -> dict:
    """Input {"text": str} -> {"words", "characters", "sentences", "top_words": [[w, n], ...]}.

    Words are lower-cased runs of letters/digits (apostrophes inside a word kept); characters
    counts Unicode code points; top_words holds up to 5 [word, count] pairs, most frequent first.
    """
    return await text_stats_chain.ainvoke(as_plain(value))
