"""The vllm backend: the engine runs inside this (GPU Celery worker) process.

One judge per worker process (DESIGN section 4): the ``vllm.LLM`` engine is
created once, on the first ``generate``, and serves every later call. vllm is
imported only then, so the web process and CPU workers never need it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from jury.backends.base import BackendError, Conversation, Generation, JudgeConfig

logger = logging.getLogger(__name__)

# The engine options a judge's `extra` may set; the rest of `extra` is for other
# backends or for the jury, and never reaches vllm.LLM.
ENGINE_OPTIONS = (
    "tensor_parallel_size",
    "max_model_len",
    "dtype",
    "gpu_memory_utilization",
    "quantization",
    "enforce_eager",
    "max_num_seqs",
    "seed",
)

_engine: tuple[tuple[str, tuple[tuple[str, Any], ...]], Any] | None = None
_engine_lock = threading.Lock()
# The engine is not thread-safe: callers from threads (the --sync path) take turns.
_call_lock = threading.Lock()


def engine_options(config: JudgeConfig) -> dict[str, Any]:
    """The ``vllm.LLM`` keyword arguments this judge's configuration asks for."""
    return {k: config.extra[k] for k in ENGINE_OPTIONS if k in config.extra}


def _get_engine(config: JudgeConfig) -> Any:
    """The process's engine, created on first use.

    A GPU holds one engine: a second judge with another model (or other engine
    options) in the same process is a deployment mistake, refused with a clear
    message instead of an out-of-memory error halfway through loading.
    """
    global _engine
    options = engine_options(config)
    key = (config.model, tuple(sorted(options.items())))
    with _engine_lock:
        if _engine is not None:
            running, llm = _engine
            if running != key:
                raise BackendError(
                    f"judge {config.name!r} wants vLLM engine {key}, but this "
                    f"process already runs {running}: run one judge per worker "
                    "(see docs/jury-backends.md)"
                )
            return llm
        try:
            from vllm import LLM
        except ImportError as exc:
            raise BackendError(
                "the vllm backend needs vLLM on a GPU host: "
                "pip install -e '.[jury-gpu]'"
            ) from exc
        started = time.perf_counter()
        llm = LLM(model=config.model, **options)
        logger.info(
            "vLLM engine for %s ready in %.0f s (%s)",
            config.model,
            time.perf_counter() - started,
            options,
        )
        _engine = (key, llm)
        return llm


class VLLMBackend:
    """Offline batched chat through ``vllm.LLM.chat`` (one call per chunk).

    Engine options come from ``config.extra`` (see ``ENGINE_OPTIONS``); the
    sampling parameters from the configuration's temperature and max_tokens.
    """

    def __init__(self, config: JudgeConfig) -> None:
        if not config.model:
            raise BackendError(f"judge {config.name!r}: no model given")
        self.config = config

    def load(self) -> Any:
        """Start the process's engine now (or reuse it), so that a run can say
        "Loading the model" while it loads (jury.runs.services); `generate` would start it
        otherwise."""
        return _get_engine(self.config)

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        schema: Mapping[str, Any] | None,
    ) -> list[Generation]:
        if not conversations:
            return []
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        llm = _get_engine(self.config)
        sampling: dict[str, Any] = {
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if schema is not None:
            sampling["structured_outputs"] = StructuredOutputsParams(json=dict(schema))
        params = SamplingParams(**sampling)
        messages = [
            [dict(message) for message in conversation]
            for conversation in conversations
        ]
        with _call_lock:
            started = time.perf_counter()
            outputs = llm.chat(messages, sampling_params=params, use_tqdm=False)
            # The engine schedules the chunk as a whole: each item gets an even
            # share of its wall time.
            share_ms = round(
                (time.perf_counter() - started) * 1000 / len(conversations)
            )
        if len(outputs) != len(conversations):
            raise BackendError(
                f"vLLM returned {len(outputs)} outputs for {len(conversations)} "
                "conversations"
            )
        generations = []
        for output in outputs:
            completion = output.outputs[0]
            generations.append(
                Generation(
                    text=completion.text,
                    prompt_tokens=len(output.prompt_token_ids or ()),
                    completion_tokens=len(completion.token_ids),
                    latency_ms=share_ms,
                )
            )
        return generations
