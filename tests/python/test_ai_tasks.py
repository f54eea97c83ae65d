"""The AI tasks (sluice/ai_tasks.py) on langchain_core's fake chat models: chains, streaming,
parsing, retries, validation and aggregation, without a real model."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterator

import msgpack
import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from sluice import ai_tasks, models
from sluice.ai_tasks import parse_entities, parse_sentiment
from sluice.context import JobContext
from sluice.errors import NonRetryableError
from sluice.protocol import Chunk, Job, Progress


class FakeModel(GenericFakeChatModel):
    """GenericFakeChatModel that answers through `respond(messages) -> str` (or from the
    `messages` iterator), reports usage (one token per word) and a model name like a real
    provider, and records every call's messages and bound kwargs."""

    respond: Callable[[list[BaseMessage]], str] | None = None
    messages: Iterator[Any] = Field(default_factory=lambda: iter(()))
    calls: list = Field(default_factory=list)
    model_name: str = "fake-model"

    def _answer(self, messages: list[BaseMessage], kwargs: dict) -> AIMessage:
        self.calls.append((messages, kwargs))
        text = self.respond(messages) if self.respond else next(self.messages)
        prompt_tokens = sum(len(str(m.content).split()) for m in messages)
        return AIMessage(content=text, usage_metadata={
            "input_tokens": prompt_tokens, "output_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split())},
            response_metadata={"model_name": self.model_name})

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages, kwargs))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        answer = self._answer(messages, kwargs)
        for word in answer.content.split(" "):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=answer.usage_metadata,
            response_metadata=answer.response_metadata))


@pytest.fixture
def use_model():
    """use_model(model) makes `model` the process's chat model for the test."""
    yield models.set_chat_model
    models.set_chat_model(None)


class Recorder:
    """A JobContext whose reports land in a list."""

    def __init__(self) -> None:
        self.reports: list = []
        self.ctx = JobContext(Job("job-1", "t", b"", 1, 0), "w", self.reports.append)

    def chunks(self) -> list[str]:
        return [r.data for r in self.reports if isinstance(r, Chunk)]

    def progress(self) -> list[tuple[float, str]]:
        return [(r.fraction, r.message) for r in self.reports if isinstance(r, Progress)]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def system_of(messages: list[BaseMessage]) -> str:
    return next((str(m.content) for m in messages if m.type == "system"), "")


# ---- chat --------------------------------------------------------------------------------------


def test_chat_streams_each_token_as_a_chunk_and_returns_text_model_and_usage(use_model):
    model = FakeModel(messages=iter(["Hello there, friend."]))
    use_model(model)
    rec = Recorder()
    result = run(ai_tasks.chat({"messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Say hi"}],
                                "max_tokens": 12}, rec.ctx))
    assert rec.chunks() == ["Hello ", "there, ", "friend. "]
    assert result["text"] == "Hello there, friend. "
    assert result["model"] == "fake-model"
    assert result["usage"] == {"prompt_tokens": 4, "completion_tokens": 3}
    (messages, kwargs), = model.calls
    assert [(m.type, m.content) for m in messages] == [("system", "Be brief."), ("human", "Say hi")]
    assert kwargs["max_tokens"] == 12


def test_chat_takes_a_prompt_and_keeps_braces_literal(use_model):
    model = FakeModel(messages=iter(["ok"]))
    use_model(model)
    run(ai_tasks.chat({"prompt": "JSON like {\"a\": 1} please"}, Recorder().ctx))
    assert model.calls[0][0][0].content == 'JSON like {"a": 1} please'


@pytest.mark.parametrize("value, words", [
    (None, "chat needs input"),
    ({}, '"messages" (a list) or "prompt"'),
    ({"messages": []}, '"messages" must be a list of 1..200'),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0] must be"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0] must be"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
     "last message must be from the user"),
    ({"prompt": "hi", "max_tokens": 0}, '"max_tokens" must be an integer in 1..4096'),
    ({"prompt": "hi", "max_tokens": True}, '"max_tokens" must be an integer'),
    ({"prompt": "hi", "temperature": 3}, '"temperature" must be a number in 0..2'),
])
def test_chat_rejects_bad_input_without_retry(use_model, value, words):
    use_model(FakeModel())
    with pytest.raises(NonRetryableError) as info:
        run(ai_tasks.chat(value, Recorder().ctx))
    assert words in str(info.value)


# ---- summarize ---------------------------------------------------------------------------------


def test_summarize_short_text_is_one_call(use_model):
    model = FakeModel(messages=iter(["  A short summary.  "]))
    use_model(model)
    rec = Recorder()
    result = run(ai_tasks.summarize({"text": "Cats sleep a lot. Dogs do too."}, rec.ctx))
    assert result["summary"] == "A short summary." and result["chunks"] == 1
    assert result["model"] == "fake-model" and result["usage"]["completion_tokens"] == 3
    assert rec.progress() == [(1.0, "summarized chunk 1 of 1")]
    assert "Cats sleep a lot." in model.calls[0][0][-1].content


def test_summarize_asks_again_when_the_summary_repeats_the_text_then_takes_its_first_sentence(
        use_model):
    text = "Cats sleep a lot. Dogs do too. Fish never close their eyes."
    model = FakeModel(messages=iter([text, "Cats sleep a lot. Dogs do too."]))
    use_model(model)
    result = run(ai_tasks.summarize({"text": text}, Recorder().ctx))
    assert result["summary"] == "Cats sleep a lot."
    assert [kwargs.get("temperature") for _, kwargs in model.calls] == [
        0, ai_tasks.RETRY_TEMPERATURE]


def test_summarize_keeps_a_second_answer_in_other_words(use_model):
    text = "Cats sleep a lot. Dogs do too. Fish never close their eyes."
    model = FakeModel(messages=iter(["Cats sleep a lot. Dogs do too.", "Pets rest often."]))
    use_model(model)
    assert run(ai_tasks.summarize({"text": text}, Recorder().ctx))["summary"] == "Pets rest often."


@pytest.mark.parametrize("summary, copied", [
    ("Cats sleep a lot. Dogs do too. Fish never close their eyes.", True),   # the text itself
    ("Cats sleep a lot, dogs do too, and fish never close them", True),      # nearly as long
    ("Cats sleep a lot. Dogs do too.", True),                               # lifted word for word
    ("Pets rest a lot, but fish do not.", False),
    ("Cats sleep.", False),
])
def test_too_close_to_source(summary, copied):
    text = "Cats sleep a lot. Dogs do too. Fish never close their eyes."
    assert ai_tasks.too_close_to_source(summary, text) is copied


def test_summarize_long_text_maps_each_chunk_then_reduces(use_model, monkeypatch):
    monkeypatch.setattr(ai_tasks, "SUMMARIZE_CHUNK_CHARS", 200)
    paragraphs = [f"Paragraph {i} is about topic {i}. " * 4 for i in range(5)]

    def respond(messages):
        user = str(messages[-1].content)
        if "Partial summaries" in user:
            return "Overall summary."
        return "About " + next(f"topic {i}" for i in range(5) if f"topic {i}." in user) + "."

    model = FakeModel(respond=respond)
    use_model(model)
    rec = Recorder()
    result = run(ai_tasks.summarize({"text": "\n\n".join(paragraphs)}, rec.ctx))
    chunks = result["chunks"]
    assert chunks >= 5 and result["summary"] == "Overall summary."
    assert len(model.calls) == chunks + 1  # map each chunk, one reduce
    reduce_input = str(model.calls[-1][0][-1].content)
    assert all(f"About topic {i}." in reduce_input for i in range(5))
    progress = rec.progress()
    assert [m for _, m in progress[:-1]] == [f"summarized chunk {i} of {chunks}"
                                              for i in range(1, chunks + 1)]
    assert progress[-1] == (1.0, f"combined {chunks} chunk summaries")
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Usage is summed over all the calls.
    assert result["usage"]["completion_tokens"] == sum(
        len(respond(m).split()) for m, _ in model.calls)


def test_summarize_collapses_partial_summaries_that_do_not_fit(use_model, monkeypatch):
    monkeypatch.setattr(ai_tasks, "SUMMARIZE_CHUNK_CHARS", 100)
    monkeypatch.setattr(ai_tasks, "SUMMARIZE_OVERLAP_CHARS", 0)

    def respond(messages):
        if "Partial summaries" in str(messages[-1].content):
            return "Combined."
        return "A rather long partial summary of this piece of the text."  # 57 chars

    use_model(FakeModel(respond=respond))
    result = run(ai_tasks.summarize({"text": "word " * 200}, Recorder().ctx))
    assert result["summary"] == "Combined." and result["chunks"] >= 10


@pytest.mark.parametrize("value", [None, {"text": 3}, {"text": "   "}, "just a string"])
def test_text_tasks_reject_bad_input(use_model, value):
    use_model(FakeModel())
    for name in ("summarize", "sentiment", "entities", "analyze"):
        with pytest.raises(NonRetryableError, match=name):
            run(getattr(ai_tasks, name)(value, Recorder().ctx))


# ---- sentiment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("answer, expected", [
    ('{"label": "positive", "score": 0.91}', {"label": "positive", "score": 0.91}),
    ('Sure! Here it is: {"label": "Negative", "score": "80%"} Hope it helps.',
     {"label": "negative", "score": 0.8}),
    ('{"sentiment": "neutral", "confidence": 1}', {"label": "neutral", "score": 1.0}),
    ('{"label": "positive", "score": 9.0}', {"label": "positive", "score": 0.5}),
    ("The sentiment is Negative.", {"label": "negative", "score": 0.5}),
    ("positive", {"label": "positive", "score": 0.5}),
])
def test_parse_sentiment_accepts_json_or_a_bare_label(answer, expected):
    assert parse_sentiment(answer) == expected


@pytest.mark.parametrize("answer", ["I cannot tell.", "It is positive and negative.",
                                    '{"label": "happy", "score": 0.9}', ""])
def test_parse_sentiment_rejects_answers_without_one_label(answer):
    with pytest.raises(OutputParserException):
        parse_sentiment(answer)


def with_logprobs(text: str, steps: list[list[tuple[str, float]]]) -> AIMessage:
    """An answer carrying token log-probabilities in OpenAI's shape, one step per list."""
    return AIMessage(content=text, response_metadata={"logprobs": {"content": [
        {"token": alternatives[0][0], "logprob": alternatives[0][1],
         "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alternatives]}
        for alternatives in steps]}})


def test_sentiment_score_is_the_label_probability_when_the_answer_has_logprobs():
    import math
    answer = with_logprobs('{"label": "negative", "score": 0.9}', [
        [('{"', -0.01)], [("label", -0.01)], [(' "', -0.1), (" None", -5.0)],
        [("negative", math.log(0.4)), ("neutral", math.log(0.3)), ("positive", math.log(0.1)),
         ("no", math.log(0.1))],
        [('",', -0.01), ("negative", -9.0)]])
    assert ai_tasks.label_probabilities(answer) == pytest.approx(
        {"negative": 0.5, "neutral": 0.375, "positive": 0.125})
    assert ai_tasks.sentiment_answer(answer) == {"label": "negative", "score": 0.5}
    # Without logprobs (another provider), the score the model wrote.
    assert ai_tasks.sentiment_answer(AIMessage(content='{"label": "negative", "score": 0.9}')) == {
        "label": "negative", "score": 0.9}


def test_sentiment_retries_an_unparseable_answer_and_sums_usage(use_model):
    model = FakeModel(messages=iter(["hmm, hard to say", '{"label": "negative", "score": 0.7}']))
    use_model(model)
    result = run(ai_tasks.sentiment({"text": "The food was cold."}, Recorder().ctx))
    assert (result["label"], result["score"]) == ("negative", 0.7)
    assert len(model.calls) == 2
    assert result["usage"]["completion_tokens"] == 4 + 4
    assert "The food was cold." in model.calls[0][0][-1].content


def test_sentiment_fails_without_retry_after_three_unparseable_answers(use_model):
    model = FakeModel(messages=iter(["no idea", "still no idea", "I refuse"]))
    use_model(model)
    with pytest.raises(NonRetryableError) as info:
        run(ai_tasks.sentiment({"text": "Meh."}, Recorder().ctx))
    message = str(info.value)
    assert message.startswith("sentiment: the model's answer could not be parsed after 3 tries")
    assert "names no label" in message and "'I refuse'" in message
    assert len(model.calls) == ai_tasks.STRUCTURED_ATTEMPTS == 3


# ---- entities ----------------------------------------------------------------------------------

SOURCE = "Ada Lovelace worked with Charles Babbage in London in 1843."


def test_parse_entities_normalizes_types_and_drops_invented_and_duplicate_ones():
    answer = ('Entities: {"entities": [{"text": "Ada Lovelace", "type": "person"}, '
              '{"text": "London", "type": "GPE"}, {"name": "1843", "label": "date"}, '
              '{"text": "Paris", "type": "LOCATION"}, {"text": "ada lovelace", "type": "PER"}, '
              '{"text": "Charles Babbage", "type": "inventor"}, {"text": "I", "type": "PERSON"}, '
              '"junk", {"type": "PERSON"}]}')
    assert parse_entities(answer, SOURCE) == [
        {"text": "Ada Lovelace", "type": "PERSON"}, {"text": "London", "type": "LOCATION"},
        {"text": "1843", "type": "DATE"}, {"text": "Charles Babbage", "type": "OTHER"}]


def test_parse_entities_accepts_a_bare_list_and_an_empty_one():
    assert parse_entities('[{"text": "London", "type": "LOC"}]', SOURCE) == [
        {"text": "London", "type": "LOCATION"}]
    assert parse_entities('{"entities": []}', SOURCE) == []
    with pytest.raises(OutputParserException):
        parse_entities("Ada Lovelace is a PERSON.", SOURCE)


def test_entity_candidates_are_capitalized_runs_and_numbers_of_the_text():
    assert ai_tasks.entity_candidates(
        "The Red Cross met Leonardo da Vinci in 1503. In Milan the University of Pavia "
        "opened on Saturday. Mayor Anne Lindboe came.") == [
        "Red Cross", "Leonardo da Vinci", "1503", "Milan", "University of Pavia", "Saturday",
        "Mayor Anne Lindboe"]
    assert ai_tasks.entity_candidates("nothing named here") == []


def test_entities_schema_lets_the_model_pick_among_the_candidates_only():
    schema = ai_tasks.entities_schema("Ada Lovelace lived in London.")
    entities = schema["properties"]["entities"]
    assert entities["items"]["properties"]["text"]["enum"] == ["Ada Lovelace", "London"]
    assert (entities["minItems"], entities["maxItems"]) == (1, 2)
    free = ai_tasks.entities_schema("nothing named here")["properties"]["entities"]
    assert free["items"]["properties"]["text"] == {"type": "string"} and "minItems" not in free


def test_structured_tasks_decode_greedily_first_then_sample(use_model):
    model = FakeModel(messages=iter(["no idea", "still none", '{"label": "neutral", "score": 1}']))
    use_model(model)
    assert run(ai_tasks.sentiment({"text": "The bus is red."}, Recorder().ctx))["label"] == "neutral"
    assert [kwargs["temperature"] for _, kwargs in model.calls] == [
        0, ai_tasks.RETRY_TEMPERATURE, ai_tasks.RETRY_TEMPERATURE]


def test_entities_task_retries_then_returns_the_list(use_model):
    model = FakeModel(messages=iter(['{"entities": oops', '{"entities": [{"text": "London", '
                                     '"type": "LOCATION"}]}']))
    use_model(model)
    result = run(ai_tasks.entities({"text": SOURCE}, Recorder().ctx))
    assert result["entities"] == [{"text": "London", "type": "LOCATION"}]
    assert result["model"] == "fake-model" and len(model.calls) == 2


def test_entities_task_fails_clearly(use_model):
    use_model(FakeModel(messages=iter(["none"] * 3)))
    with pytest.raises(NonRetryableError, match=r"entities: the model's answer could not be "
                                                r"parsed after 3 tries .*last answer: 'none'"):
        run(ai_tasks.entities({"text": SOURCE}, Recorder().ctx))


# ---- analyze -----------------------------------------------------------------------------------


def analyze_answers(messages: list[BaseMessage]) -> str:
    system = system_of(messages)
    if "sentiment" in system:
        return '{"label": "positive", "score": 0.75}'
    if "named entities" in system:
        return '{"entities": [{"text": "Ada Lovelace", "type": "PERSON"}]}'
    return "Ada and Charles worked together."


def test_analyze_spawns_its_three_parts_as_children(use_model):
    use_model(FakeModel(respond=analyze_answers))
    rec = Recorder()
    assert run(ai_tasks.analyze({"text": SOURCE, "max_tokens": 40}, rec.ctx)) is None
    spawn = rec.ctx._spawn_message()
    assert spawn.types == ["sentiment", "entities", "summarize"]
    assert [msgpack.unpackb(packed) for packed in spawn.inputs] == [{"text": SOURCE, "max_tokens": 40}] * 3
    assert spawn.on_failure == ["fail_parent"] * 3


def outcomes(results: dict[str, Any]) -> list[dict[str, Any]]:
    """ctx.children of an analyze whose parts ended with `results` (type -> result or None)."""
    return [{"id": f"child-{i}", "type": part, "status": "succeeded" if result is not None else "failed",
             "result": result, "error": "" if result is not None else "boom"}
            for i, (part, result) in enumerate(results.items())]


def test_analyze_gathers_what_its_parts_returned(use_model):
    model = FakeModel(respond=analyze_answers)
    use_model(model)
    parts = {part: run(getattr(ai_tasks, part)({"text": SOURCE, "max_tokens": 40}, Recorder().ctx))
             for part in ai_tasks.ANALYZE_PARTS}
    rec = Recorder()
    rec.ctx.children = outcomes(parts)
    result = run(ai_tasks.analyze({"text": SOURCE, "max_tokens": 40}, rec.ctx))
    assert result["sentiment"] == {"label": "positive", "score": 0.75}
    assert result["entities"] == [{"text": "Ada Lovelace", "type": "PERSON"}]
    assert result["summary"] == "Ada and Charles worked together."
    assert result["model"] == "fake-model"
    assert result["usage"]["completion_tokens"] == 4 + 6 + 5
    assert result["usage"]["prompt_tokens"] == sum(
        sum(len(str(m.content).split()) for m in msgs) for msgs, _ in model.calls)
    assert len(model.calls) == 3, "the gathering run calls no model"
    assert rec.ctx._spawn_message() is None


def test_analyze_fails_when_a_part_has_no_result(use_model):
    use_model(FakeModel(respond=analyze_answers))
    rec = Recorder()
    rec.ctx.children = outcomes({"sentiment": {"label": "neutral", "score": 0.5}, "entities": None,
                                 "summarize": {"summary": "s"}})
    with pytest.raises(NonRetryableError, match="no result from entities"):
        run(ai_tasks.analyze({"text": SOURCE}, rec.ctx))


def test_ai_tasks_are_registered_for_the_default_worker():
    from sluice.registry import registry
    assert {"chat", "summarize", "sentiment", "entities", "analyze"} <= set(registry.names())
    assert all(registry.get(n).is_async for n in ("chat", "summarize", "sentiment", "entities",
                                                  "analyze"))
