"""Tasks for tests/e2e/test_typed_inputs.py (`sluice-worker typed_tasks`, tests/e2e on PYTHONPATH):
one typed by a pydantic model (with a nested model, so its schema has $defs), one plain."""
from pydantic import BaseModel, Field

from sluice import task


class Tag(BaseModel):
    name: str = Field(min_length=1)


class SummarizeInput(BaseModel):
    text: str
    max_words: int | None = Field(None, ge=1, le=500)
    tags: list[Tag] = []


@task("typed_summary")
async def typed_summary(input: SummarizeInput, ctx):
    """Says what it was given: the model's class and its fields."""
    return {"received": type(input).__name__, "words": input.text.split()[:input.max_words or 100],
            "tags": [tag.name for tag in input.tags]}


@task("untyped")
async def untyped(value, ctx):
    return value
