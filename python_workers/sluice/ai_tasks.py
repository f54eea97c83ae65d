"""Built-in AI tasks, LangChain chains over the process's chat model (sluice/models.py): chat,
summarize, sentiment, entities and analyze. Served by `sluice-worker` when no module is named.

Inputs and results (every result also holds "model", the model's name, and "usage":
{"prompt_tokens", "completion_tokens"}, summed over every model call the job made):

    chat       {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
               or {"prompt": str}; optional "max_tokens" (1..4096), "temperature" (0..2)
               -> {"text": str}; each token is streamed as a chunk event on the way
    summarize  {"text": str} -> {"summary": str, "chunks": int}; long text is split
               (langchain-text-splitters), each piece summarized (a progress event each),
               then the pieces' summaries are combined (map-reduce). A piece's summary that
               repeats the piece is asked for again, then replaced by the piece's first sentence
    sentiment  {"text": str} -> {"label": "positive"|"negative"|"neutral", "score": 0..1}
    entities   {"text": str} -> {"entities": [{"text": str, "type": str}, ...]}
    analyze    {"text": str} -> {"sentiment": {...}, "entities": [...], "summary": str}: a
               flow (README.md, "Flows"): the three above run as child jobs, on any workers
               at once, and analyze aggregates their results

Each task declares its input as a pydantic model (TextTaskInput, ChatInput: registry.py, typed
inputs), so the api answers 422 invalid_input to a submit that does not fit it. Bad input that
reaches a handler still fails the job at once (NonRetryableError) with a message naming the field. sentiment
and entities parse the model's answer leniently (the JSON object anywhere in it; for sentiment
also a bare label word) and ask again up to STRUCTURED_ATTEMPTS times before failing the job
without retry, quoting the answer that did not parse.

What makes the embedded 135M model's answers usable (measured on bench/quality, see
bench/RESULTS.md): few-shot prompts; the first call of summarize, sentiment and entities decodes
greedily, so a text gets the same answer every time (a retry samples); the local model is held
by a llama.cpp grammar to the JSON schema of the answer: a label from the closed set, and for
entities a name from the text's candidate spans (entity_candidates) and a kind from ENTITY_TYPES.
On the local model sentiment's score is the model's probability of its label among the three
(label_probabilities); other providers' is the confidence the model writes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import re
from typing import Any, Awaitable, Callable, Literal

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pydantic import BaseModel, ConfigDict, Field

from .context import record_usage
from .errors import NonRetryableError
from .metrics import model_callbacks
from .tracing import model_span_callbacks
from .models import (ModelConfigError, ModelSettings, bind_generation, get_chat_model, model_name,
                     model_use_of, rate_limited_error)
from .registry import as_plain, task

MAX_TOKENS_LIMIT = 4096          # the largest max_tokens a job may ask for
MAX_MESSAGES = 200               # messages in one chat job
STRUCTURED_ATTEMPTS = 3          # model calls before a structured answer counts as unparseable
# sentiment and entities read this many characters of the text: enough for a review or an
# article's lead, and within a small model's context (about 4 characters per token).
CLASSIFY_CHARS = int(os.environ.get("SLUICE_CLASSIFY_CHARS", "3000"))
# summarize splits text into pieces of about this many characters (SmolLM2 is run with a
# 2048-token context: a piece, the prompt and the answer must fit).
SUMMARIZE_CHUNK_CHARS = int(os.environ.get("SLUICE_SUMMARIZE_CHUNK_CHARS", "2000"))
SUMMARIZE_OVERLAP_CHARS = 100
SUMMARIZE_MAX_ROUNDS = 3         # reduce rounds before the combined summaries are cut to fit
# A piece's summary this long relative to the piece, or with this share of its word 4-grams
# found verbatim in the piece, repeats the piece rather than summarizing it.
COPY_LENGTH_RATIO = 0.75
COPY_NGRAM_SHARE = 0.8
# Summaries and the structured tasks are decoded greedily (temperature 0), so the same text gets
# the same answer; a second try after an unusable answer samples at this temperature instead.
RETRY_TEMPERATURE = 0.7
# Pieces summarized at once. The local model takes calls one at a time anyway; a remote server
# (openai, ollama) gets this many requests of one job in flight.
MAP_CONCURRENCY = int(os.environ.get("SLUICE_MAP_CONCURRENCY", "4"))

SENTIMENT_LABELS = ("positive", "negative", "neutral")
ENTITY_TYPES = ("PERSON", "ORGANIZATION", "LOCATION", "DATE", "OTHER")
_ENTITY_TYPE_ALIASES = {
    "PER": "PERSON", "PEOPLE": "PERSON", "NAME": "PERSON",
    "ORG": "ORGANIZATION", "ORGANISATION": "ORGANIZATION", "COMPANY": "ORGANIZATION",
    "LOC": "LOCATION", "GPE": "LOCATION", "PLACE": "LOCATION", "CITY": "LOCATION",
    "COUNTRY": "LOCATION", "TIME": "DATE",
}


# ---- usage and model name, over every model call of a job -------------------------------------


class UsageRecorder(BaseCallbackHandler):
    """A LangChain callback that sums the token usage of every model call it sees.

    Pass it in a chain's config ({"callbacks": [recorder]}); it reaches nested and parallel
    calls and retries too. Thread-safe enough for asyncio (callbacks run on the loop).
    """

    def __init__(self) -> None:
        super().__init__()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.models: list[str] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = generation.message if isinstance(generation, ChatGeneration) else None
                if isinstance(message, AIMessage):
                    self.add(message)

    def add(self, message: AIMessage) -> None:
        usage = message.usage_metadata or {}
        prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        record_usage(prompt, completion)
        meta = message.response_metadata or {}
        name = meta.get("model_name") or meta.get("model")
        if isinstance(name, str) and name and name not in self.models:
            self.models.append(name)

    def stamp(self, result: dict, model: Any) -> dict:
        """Adds "model" (as the server named it, else as configured) and "usage" to `result`."""
        result["model"] = self.models[0] if self.models else model_name(model)
        result["usage"] = {"prompt_tokens": self.prompt_tokens,
                           "completion_tokens": self.completion_tokens}
        return result


def ai_task(name: str, calls: int = 1) -> Callable[[Callable], Callable]:
    """@task for a task that calls the configured chat model about `calls` times: READY declares
    the model and its token estimate (models.model_use_of) for the token budgets, and a
    provider's 429 becomes RateLimitedError (the job goes back without spending an attempt)."""
    def declared():
        try:
            return model_use_of(ModelSettings.from_env(), calls)
        except ModelConfigError:
            return None  # the first job will say what is wrong; the type is just not budgeted

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        async def run(value: Any, ctx: Any) -> Any:
            try:
                return await fn(value, ctx)
            except Exception as exc:
                limited = rate_limited_error(exc)
                if limited is None:
                    raise
                raise limited from exc

        return task(name, model=declared)(run)

    return decorate


def _config(recorder: UsageRecorder, name: str) -> RunnableConfig:
    return {"callbacks": [recorder, *model_callbacks(), *model_span_callbacks()], "run_name": name}


# ---- inputs --------------------------------------------------------------------------------------


class TextTaskInput(BaseModel):
    """The input of summarize, sentiment, entities and analyze."""

    text: str = Field(min_length=1, description="the text to work on (not only whitespace)")
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT,
                                   description="tokens each model call may generate")


class ChatMessage(BaseModel):
    """One message of a chat."""

    role: Literal["system", "user", "assistant"]
    content: str


class ChatInput(BaseModel):
    """chat's input: `messages` (the last not from the assistant) or `prompt`."""

    # The schema says one of the two is required; the handler checks it again.
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["messages"]},
                                                           {"required": ["prompt"]}]})

    messages: list[ChatMessage] | None = Field(None, min_length=1, max_length=MAX_MESSAGES)
    prompt: str | None = Field(None, min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0, le=2)



def _text_input(task_name: str, value: Any) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        raise NonRetryableError(f'{task_name} needs input {{"text": str}}, got {value!r:.200}')
    text = value["text"].strip()
    if not text:
        raise NonRetryableError(f'{task_name}: "text" is empty')
    return text


def _max_tokens(task_name: str, value: Any) -> int | None:
    limit = value.get("max_tokens") if isinstance(value, dict) else None
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TOKENS_LIMIT:
        raise NonRetryableError(
            f'{task_name}: "max_tokens" must be an integer in 1..{MAX_TOKENS_LIMIT}, got {limit!r}')
    return limit


def _chat_input(value: Any) -> tuple[list[tuple[str, str]], int | None, float | None]:
    if not isinstance(value, dict):
        raise NonRetryableError(
            f'chat needs input {{"messages": [{{"role": str, "content": str}}, ...]}} '
            f'or {{"prompt": str}}, got {value!r:.200}')
    if "messages" in value:
        messages = value["messages"]
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            raise NonRetryableError(
                f'chat: "messages" must be a list of 1..{MAX_MESSAGES} messages')
        pairs = []
        for i, message in enumerate(messages):
            if (not isinstance(message, dict) or message.get("role") not in
                    ("system", "user", "assistant") or not isinstance(message.get("content"), str)):
                raise NonRetryableError(
                    f'chat: messages[{i}] must be {{"role": "system"|"user"|"assistant", '
                    f'"content": str}}, got {message!r:.200}')
            pairs.append((message["role"], message["content"]))
        if pairs[-1][0] == "assistant":
            raise NonRetryableError("chat: the last message must be from the user (or system)")
    elif isinstance(value.get("prompt"), str) and value["prompt"].strip():
        pairs = [("user", value["prompt"])]
    else:
        raise NonRetryableError('chat needs "messages" (a list) or "prompt" (a non-empty str)')
    temperature = value.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or
                                    not isinstance(temperature, (int, float)) or
                                    not 0 <= temperature <= 2):
        raise NonRetryableError(f'chat: "temperature" must be a number in 0..2, got {temperature!r}')
    return pairs, _max_tokens("chat", value), temperature


# ---- chat --------------------------------------------------------------------------------------


def chat_chain(model: Any, max_tokens: int | None = None, temperature: float | None = None):
    """messages [(role, content), ...] -> the model's answer (an AIMessage, streamed by astream)."""
    to_messages = RunnableLambda(
        lambda pairs: ChatPromptTemplate.from_messages(
            [(role, "{m%d}" % i) for i, (role, _) in enumerate(pairs)]).format_messages(
                **{"m%d" % i: content for i, (_, content) in enumerate(pairs)}),
        name="to_messages")
    return to_messages | bind_generation(model, max_tokens=max_tokens, temperature=temperature)


@ai_task("chat")
async def chat(value: ChatInput, ctx) -> dict:
    """Streams the model's answer to a conversation as chunk events; returns the whole text."""
    pairs, max_tokens, temperature = _chat_input(as_plain(value))
    model = get_chat_model()
    recorder = UsageRecorder()
    parts: list[str] = []
    async for chunk in chat_chain(model, max_tokens, temperature).astream(
            pairs, config=_config(recorder, "chat")):
        text = _text_of(chunk)
        if text:
            parts.append(text)
            await ctx.emit(text)
    return recorder.stamp({"text": "".join(parts)}, model)


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else b.get("text", "") for b in content)


# ---- summarize: map-reduce ---------------------------------------------------------------------

# The "TL;DR" cue after the text: of the prompts tried on bench/quality/summarize.jsonl (an
# instruction with a worked example, "What is this text about?", "Rewrite as one sentence"), it
# is the one after which SmolLM2-135M most often writes a short sentence of its own instead of
# repeating the text's first sentences (bench/RESULTS.md, answer quality).
MAP_PROMPT = ChatPromptTemplate.from_messages([
    ("user", "{text}\n\nTL;DR in one sentence:"),
])
REDUCE_PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You combine partial summaries of one document into a single summary. Answer "
               "with the summary only, in two to four sentences."),
    ("user", "Partial summaries:\n\n{text}\n\nWrite one summary of the whole document."),
])

Progress = Callable[[float, str], Awaitable[None]]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def too_close_to_source(summary: str, source: str) -> bool:
    """True when `summary` repeats `source` instead of summarizing it: nearly as long
    (COPY_LENGTH_RATIO) or mostly lifted from it word for word (COPY_NGRAM_SHARE of its 4-grams)."""
    if len(summary) >= COPY_LENGTH_RATIO * len(source):
        return True
    words, source_words = _words(summary), _words(source)
    if len(words) < 4:
        return False
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    source_grams = {tuple(source_words[i:i + 4]) for i in range(len(source_words) - 3)}
    return sum(g in source_grams for g in grams) >= COPY_NGRAM_SHARE * len(grams)


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


async def summarize_text(text: str, model: Any, recorder: UsageRecorder,
                         progress: Progress | None = None, max_tokens: int | None = None) -> dict:
    """Returns {"summary", "chunks"} for `text` of any length (map-reduce; see the module doc).

    A piece's summary that repeats the piece (too_close_to_source) is asked for again, sampled
    this time; when that one repeats it too, the piece's first sentence stands in for it (an
    extractive summary: shorter than the piece, but copied)."""
    llm = bind_generation(model, max_tokens=max_tokens, temperature=0, seed=0)
    retry_llm = bind_generation(model, max_tokens=max_tokens, temperature=RETRY_TEMPERATURE,
                                seed=0)
    map_chain = (MAP_PROMPT | llm | StrOutputParser()).with_config(run_name="summarize_map")
    retry_chain = (MAP_PROMPT | retry_llm | StrOutputParser()).with_config(
        run_name="summarize_map_retry")
    reduce_chain = (REDUCE_PROMPT | llm | StrOutputParser()).with_config(
        run_name="summarize_reduce")
    splitter = RecursiveCharacterTextSplitter(chunk_size=SUMMARIZE_CHUNK_CHARS,
                                              chunk_overlap=SUMMARIZE_OVERLAP_CHARS)
    chunks = splitter.split_text(text) or [text]
    total_steps = len(chunks) + (1 if len(chunks) > 1 else 0)
    config = _config(recorder, "summarize")
    limit = asyncio.Semaphore(MAP_CONCURRENCY)
    done = 0

    async def summarize_chunk(chunk: str) -> str:
        nonlocal done
        async with limit:
            summary = (await map_chain.ainvoke({"text": chunk}, config=config)).strip()
            if too_close_to_source(summary, chunk):
                summary = (await retry_chain.ainvoke({"text": chunk}, config=config)).strip()
                if too_close_to_source(summary, chunk):
                    lead = _first_sentence(chunk)
                    summary = lead if len(lead) < len(chunk) else _first_sentence(summary)
        done += 1
        if progress is not None:
            await progress(done / total_steps, f"summarized chunk {done} of {len(chunks)}")
        return summary

    summaries = await asyncio.gather(*(summarize_chunk(c) for c in chunks))
    if len(summaries) == 1:
        return {"summary": summaries[0], "chunks": 1}
    combined = "\n\n".join(s for s in summaries if s)
    # Collapse: while the partial summaries do not fit one call, combine them piecewise.
    for _ in range(SUMMARIZE_MAX_ROUNDS):
        if len(combined) <= SUMMARIZE_CHUNK_CHARS:
            break
        pieces = splitter.split_text(combined)
        partial = await asyncio.gather(*(reduce_chain.ainvoke({"text": p}, config=config)
                                         for p in pieces))
        combined = "\n\n".join(s.strip() for s in partial if s.strip())
    summary = (await reduce_chain.ainvoke({"text": combined[:SUMMARIZE_CHUNK_CHARS]},
                                          config=config)).strip()
    if progress is not None:
        await progress(1.0, f"combined {len(chunks)} chunk summaries")
    return {"summary": summary, "chunks": len(chunks)}


@ai_task("summarize", calls=2)
async def summarize(value: TextTaskInput, ctx) -> dict:
    """Summarizes text of any length; a progress event per chunk summarized."""
    value = as_plain(value)
    text = _text_input("summarize", value)
    max_tokens = _max_tokens("summarize", value)
    model = get_chat_model()
    recorder = UsageRecorder()
    result = await summarize_text(text, model, recorder, ctx.progress, max_tokens)
    return recorder.stamp(result, model)


# ---- structured output: parsing ----------------------------------------------------------------


def _json_values(text: str) -> list[Any]:
    """Returns every JSON object or array found in `text`, outermost first, in order."""
    decoder = json.JSONDecoder()
    found, i = [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except ValueError:
                i += 1
                continue
            found.append(value)
            i = end
        else:
            i += 1
    return found


def _score(value: Any) -> float | None:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", value)
        if not match:
            return None
        number = float(match.group(1)) / (100 if match.group(2) else 1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def _label(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    word = value.strip().strip(".!\"'").lower()
    word = {"pos": "positive", "neg": "negative", "neu": "neutral", "mixed": "neutral"}.get(word, word)
    return word if word in SENTIMENT_LABELS else None


# Score recorded when the model names a label but gives no usable confidence.
UNSTATED_SCORE = 0.5


def parse_sentiment(answer: str) -> dict:
    """Parses a model's sentiment answer into {"label", "score"}.

    Accepts a JSON object with "label" (or "sentiment") and "score" (or "confidence"; 0..1 or a
    percentage) anywhere in the text, or else exactly one of the label words in plain text.
    A missing or out-of-range score becomes UNSTATED_SCORE. Raises OutputParserException.
    """
    for value in _json_values(answer):
        if isinstance(value, dict):
            label = _label(value.get("label", value.get("sentiment")))
            if label is not None:
                score = _score(value.get("score", value.get("confidence")))
                return {"label": label, "score": UNSTATED_SCORE if score is None else score}
    words = {w for w in re.findall(r"[a-z]+", answer.lower()) if w in SENTIMENT_LABELS}
    if len(words) == 1:
        return {"label": words.pop(), "score": UNSTATED_SCORE}
    reason = "names several labels" if words else "names no label"
    raise OutputParserException(
        f"not a sentiment ({reason}; expected one of {', '.join(SENTIMENT_LABELS)})",
        llm_output=answer)


def _entity_type(value: Any) -> str:
    kind = value.strip().upper().replace(" ", "_") if isinstance(value, str) else ""
    kind = _ENTITY_TYPE_ALIASES.get(kind, kind)
    return kind if kind in ENTITY_TYPES else "OTHER"


def parse_entities(answer: str, source: str) -> list[dict]:
    """Parses a model's entities answer into [{"text", "type"}, ...].

    Accepts {"entities": [...]} or a bare list, anywhere in the text; items are {"text", "type"}
    (also "name"/"entity" and "label"/"category"). Types are normalized to ENTITY_TYPES (unknown
    ones become OTHER). Entities that do not occur in `source` (invented by the model) and
    duplicates are dropped. Raises OutputParserException when no such list is found.
    """
    lowered = source.lower()
    for value in _json_values(answer):
        items = value.get("entities") if isinstance(value, dict) else value
        if not isinstance(items, list):
            continue
        entities, seen = [], set()
        for item in items:
            if not isinstance(item, dict):
                continue
            text = item.get("text", item.get("name", item.get("entity")))
            if not isinstance(text, str) or not text.strip():
                continue
            text = text.strip()
            if len(text) < 2:  # "I", "a": a small model's noise, never a named entity
                continue
            kind = _entity_type(item.get("type", item.get("label", item.get("category"))))
            key = (text.lower(), kind)
            if text.lower() in lowered and key not in seen:
                seen.add(key)
                entities.append({"text": text, "type": kind})
        return entities
    raise OutputParserException('no JSON list of entities ({"entities": [{"text", "type"}]})',
                                llm_output=answer)


# ---- sentiment and entities: prompt | model | parser, retried ---------------------------------

SENTIMENT_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": list(SENTIMENT_LABELS)},
                   "score": {"type": "number"}},
    "required": ["label", "score"],
}
# One example of each label, none of them from the README or bench/quality. SmolLM2-135M leans
# to the label of the last example it saw (shown one positive example, it called all ten neutral
# texts of bench/quality/sentiment.jsonl positive); this order did best of those tried there.
# The scores written differ, but the model still copies them: on the local model the score is
# read from its token probabilities instead (sentiment_answer).
SENTIMENT_PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You classify the sentiment of a text. positive: the writer is pleased, praises "
               "or enjoys something. negative: the writer complains, is disappointed or angry. "
               "neutral: plain facts or information, no feeling either way. Answer with JSON "
               'only: {{"label": "positive" or "negative" or "neutral", "score": your '
               "confidence between 0 and 1}}."),
    ("user", "Text: The staff were friendly and our room was spotless."),
    ("assistant", '{{"label": "positive", "score": 0.9}}'),
    ("user", "Text: The battery died after two days and nobody answered my calls."),
    ("assistant", '{{"label": "negative", "score": 0.85}}'),
    ("user", "Text: The office is on the third floor, next to the lift."),
    ("assistant", '{{"label": "neutral", "score": 0.7}}'),
    ("user", "Text: {text}"),
])

# Alternatives asked for at each token of a sentiment answer: where the model writes the label,
# SmolLM2's three labels (one token each) are among its ten likeliest tokens.
LABEL_ALTERNATIVES = 10


def label_probabilities(message: BaseMessage) -> dict[str, float] | None:
    """Returns the model's probability of each sentiment label it considered, normalized over
    the labels, from the token log-probabilities in the message (response_metadata "logprobs",
    OpenAI's shape) at the step where it wrote the label: the first step whose alternatives hold
    two labels or more. None when the message has no such step."""
    steps = ((message.response_metadata or {}).get("logprobs") or {}).get("content") or []
    for step in steps:
        found: dict[str, float] = {}
        for alternative in step.get("top_logprobs") or []:
            word = alternative["token"].strip().strip('"').lower()
            if word in SENTIMENT_LABELS and word not in found:
                found[word] = math.exp(alternative["logprob"])
        if len(found) >= 2:
            total = sum(found.values())
            return {label: p / total for label, p in found.items()}
    return None


def sentiment_answer(message: BaseMessage) -> dict:
    """parse_sentiment of the message's text, with the model's probability of the label as the
    score when the message holds token probabilities (label_probabilities) instead of the
    confidence the model wrote, which only copies the numbers of the prompt's examples."""
    result = parse_sentiment(_text_of(message))
    probabilities = label_probabilities(message)
    if probabilities and result["label"] in probabilities:
        result["score"] = round(probabilities[result["label"]], 3)
    return result


# Two examples with every kind, not from the README or bench/quality. SmolLM2-135M gives most
# entities the kinds of the last example it saw: after one example of three places it called
# nearly everything a LOCATION; ending on a date, an organization and a person did best of the
# orders tried on bench/quality/entities.jsonl.
ENTITIES_PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You extract named entities (people, organizations, locations, dates) from a "
               'text. Answer with JSON only: {{"entities": [{{"text": ..., "type": "PERSON" or '
               '"ORGANIZATION" or "LOCATION" or "DATE" or "OTHER"}}]}}.'),
    ("user", "Text: Kofi Mensah joined Siemens in Munich in 2019."),
    ("assistant", '{{"entities": [{{"text": "Kofi Mensah", "type": "PERSON"}}, '
                  '{{"text": "Siemens", "type": "ORGANIZATION"}}, '
                  '{{"text": "Munich", "type": "LOCATION"}}, {{"text": "2019", "type": "DATE"}}]}}'),
    ("user", "Text: In June the United Nations praised Angela Ruiz."),
    ("assistant", '{{"entities": [{{"text": "June", "type": "DATE"}}, '
                  '{{"text": "United Nations", "type": "ORGANIZATION"}}, '
                  '{{"text": "Angela Ruiz", "type": "PERSON"}}]}}'),
    ("user", "Text: {text}"),
])

MAX_ENTITY_CANDIDATES = 64       # spans offered to the local model's grammar (enum size)
# A run of capitalized words (joined by the lower-case particles of names: "Leonardo da Vinci",
# "University of Oslo"), or a number such as a year.
_CANDIDATE = re.compile(
    r"\b[A-Z][\w'’.-]*(?:\s+(?:(?:of|da|de|del|der|di|du|la|le|van|von|bin|al)\s+)*"
    r"[A-Z][\w'’.-]*)*|\b\d{1,4}\b")
# Capitalized only because they start a sentence: dropped from the front of a candidate.
_LEADING_WORDS = {"the", "a", "an", "in", "on", "at", "by", "for", "from", "to", "and", "but",
                  "our", "my", "his", "her", "their", "its", "this", "that", "these", "those",
                  "after", "before", "when", "while", "if", "some", "most", "each", "every"}


def entity_candidates(text: str) -> list[str]:
    """The spans of `text` that can be named entities, in order, without repeats: runs of
    capitalized words (a leading "The", "In", ... dropped) and numbers. Trailing dots and
    apostrophes are cut ("Paris." -> "Paris")."""
    found: list[str] = []
    for match in _CANDIDATE.finditer(text):
        # A run may cross a sentence's end ("on Saturday. Mayor Anne Lindboe"): split it there.
        for piece in re.split(r"(?<=[.!?])\s+", match.group(0)):
            words = piece.rstrip(".'’-").split()
            while words and words[0].lower() in _LEADING_WORDS:
                words = words[1:]
            span = " ".join(words)
            if len(span) >= 2 and span not in found:
                found.append(span)
    return found[:MAX_ENTITY_CANDIDATES]


def entities_schema(text: str) -> dict:
    """The JSON schema of an entities answer for `text`: each entity's "text" is one of the
    text's candidate spans (entity_candidates), so the local model can neither invent a name
    nor answer with an empty list when there is something to choose; at most one entity per
    candidate. A text without candidates gets a free-form schema."""
    candidates = entity_candidates(text)
    name = {"type": "string", "enum": candidates} if candidates else {"type": "string"}
    entities: dict[str, Any] = {"type": "array", "items": {
        "type": "object",
        "properties": {"text": name, "type": {"type": "string", "enum": list(ENTITY_TYPES)}},
        "required": ["text", "type"]}}
    if candidates:
        entities.update(minItems=1, maxItems=len(candidates))
    return {"type": "object", "properties": {"entities": entities}, "required": ["entities"]}


async def ask_structured(task_name: str, prompt: ChatPromptTemplate, inputs: dict, model: Any,
                         parse: Callable[[BaseMessage], Any], schema: dict,
                         recorder: UsageRecorder, max_tokens: int | None = None,
                         top_logprobs: int | None = None) -> Any:
    """Runs prompt | model | parse and returns what `parse` made of the answer (the model's
    message; with top_logprobs the local model's holds its token probabilities). The first call
    decodes greedily (the same text, the same answer); while the answer does not parse, asks
    again sampling at RETRY_TEMPERATURE, up to STRUCTURED_ATTEMPTS calls in all. The local
    model is held to `schema` by a llama.cpp grammar. Raises NonRetryableError after that,
    quoting the last answer."""
    config = _config(recorder, task_name)
    for attempt in range(STRUCTURED_ATTEMPTS):
        llm = bind_generation(model, max_tokens=max_tokens, json_schema=schema,
                              temperature=0 if attempt == 0 else RETRY_TEMPERATURE,
                              seed=attempt, top_logprobs=top_logprobs)
        chain = prompt | llm | RunnableLambda(parse, name="parse")
        try:
            return await chain.ainvoke(inputs, config=config)
        except OutputParserException as exc:
            failure = exc
    answer = (failure.llm_output or "").strip()
    reason = str(failure).split("\n")[0]
    raise NonRetryableError(
        f"{task_name}: the model's answer could not be parsed after {STRUCTURED_ATTEMPTS} "
        f"tries ({reason}); last answer: {answer[:300]!r}")


async def sentiment_of(text: str, model: Any, recorder: UsageRecorder,
                       max_tokens: int | None = None) -> dict:
    """Returns {"label", "score"} for `text` (its first CLASSIFY_CHARS characters).
    Raises NonRetryableError when the model's answers do not parse."""
    return await ask_structured("sentiment", SENTIMENT_PROMPT, {"text": text[:CLASSIFY_CHARS]},
                                model, sentiment_answer, SENTIMENT_SCHEMA, recorder,
                                max_tokens or 64, LABEL_ALTERNATIVES)


async def entities_of(text: str, model: Any, recorder: UsageRecorder,
                      max_tokens: int | None = None) -> list[dict]:
    """Returns [{"text", "type"}, ...] for `text` (its first CLASSIFY_CHARS characters).
    Raises NonRetryableError when the model's answers do not parse."""
    source = text[:CLASSIFY_CHARS]
    return await ask_structured("entities", ENTITIES_PROMPT, {"text": source}, model,
                                lambda answer: parse_entities(_text_of(answer), source),
                                entities_schema(source), recorder, max_tokens)


async def _one_chain(task_name: str, value: Any, run, shape) -> dict:
    """A task that is one chain over {"text"}: runs `run` with the model, then `shape`s what it
    returned into the result and stamps the model and token usage on it."""
    value = as_plain(value)
    text = _text_input(task_name, value)
    max_tokens = _max_tokens(task_name, value)
    model = get_chat_model()
    recorder = UsageRecorder()
    return recorder.stamp(shape(await run(text, model, recorder, max_tokens)), model)


@ai_task("sentiment")
async def sentiment(value: TextTaskInput, ctx) -> dict:
    """{"text"} -> {"label": positive|negative|neutral, "score": 0..1, "model", "usage"}."""
    return await _one_chain("sentiment", value, sentiment_of, dict)


@ai_task("entities")
async def entities(value: TextTaskInput, ctx) -> dict:
    """{"text"} -> {"entities": [{"text", "type"}, ...], "model", "usage"}."""
    return await _one_chain("entities", value, entities_of, lambda found: {"entities": found})


# ---- analyze: a flow of the three -----------------------------------------------------------

ANALYZE_PARTS = ("sentiment", "entities", "summarize")


@task("analyze")
async def analyze(value: TextTaskInput, ctx) -> dict:
    """{"text"} -> {"sentiment": {"label", "score"}, "entities": [...], "summary": str,
    "model", "usage" (summed over the three)}. A flow: the first run spawns sentiment, entities
    and summarize as three jobs (any workers may run them at once; the job waits without a
    slot), the second aggregates their results. A part that failed fails the job. It calls no
    model itself, so it declares none: the token budgets count its three parts."""
    value = as_plain(value)
    text = _text_input("analyze", value)
    max_tokens = _max_tokens("analyze", value)
    if not ctx.children:
        part_input = {"text": text} if max_tokens is None else {"text": text, "max_tokens": max_tokens}
        for part in ANALYZE_PARTS:
            await ctx.spawn(part, part_input)
        return None
    results = {child["type"]: child["result"] for child in ctx.children}
    missing = [part for part in ANALYZE_PARTS if not isinstance(results.get(part), dict)]
    if missing:
        raise NonRetryableError(f"analyze: no result from {', '.join(missing)}")
    usage = {key: sum(int(results[part].get("usage", {}).get(key, 0)) for part in ANALYZE_PARTS)
             for key in ("prompt_tokens", "completion_tokens")}
    sentiment_result = results["sentiment"]
    return {"sentiment": {"label": sentiment_result.get("label"), "score": sentiment_result.get("score")},
            "entities": results["entities"].get("entities", []),
            "summary": results["summarize"].get("summary", ""),
            "model": sentiment_result.get("model"), "usage": usage}
