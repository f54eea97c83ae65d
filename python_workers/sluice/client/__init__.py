"""A Python client of the Sluice HTTP API (README.md, "Use it from Python").

    from sluice.client import Client

    client = Client("http://127.0.0.1:8080", api_key=None)
    job = client.submit("chat", {"prompt": "Write a haiku about rivers.", "max_tokens": 60})
    for text in client.stream_text(job.id):
        print(text, end="", flush=True)
    print(client.wait(job.id).result)

`Client` (sync) and `AsyncClient` (asyncio) share one implementation (core.py: requests,
retries, error mapping, the SSE parser), on httpx. Every error answer raises the `ApiError`
subclass of its stable code (`JobNotFound`, `RateLimited`, ...; errors.py), all of them
`sluice.errors.SluiceError`s. 429 and 503 answers are retried with exponential backoff that
honours Retry-After (`RetryPolicy`), and a submit carries an automatic Idempotency-Key, the same
on each retry, so a retried submit never makes two jobs.

This package needs httpx only: it imports none of the worker's modules (pyzmq, msgpack,
LangChain, llama-cpp).
"""

from .aio import AsyncClient
from .core import AsyncTextStream, Event, Job, RetryPolicy, TextAssembler, TextChunk, TextStream
from .errors import *  # noqa: F401,F403 (one class per error code: errors.__all__)
from .errors import __all__ as _error_names
from .sync import Client

__all__ = ["AsyncClient", "AsyncTextStream", "Client", "Event", "Job", "RetryPolicy", "TextAssembler", "TextChunk",
           "TextStream", *_error_names]
