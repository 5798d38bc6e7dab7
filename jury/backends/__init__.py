"""The jury's model backends behind one interface (DESIGN section 4).

``get_backend(config)`` hands out one backend per process for each distinct
configuration (everything but the judge's name), created on first use. Heavy
state is shared one level further down: judges that use the same model on the
same device share one loaded model (transformers) or the process's one engine
(vllm), whatever their sampling parameters.

Importing this package imports nothing heavy: torch, transformers, xgrammar,
openai and vllm are imported inside the backend that needs them.
"""

import json
import threading

from jury.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    Conversation,
    Generation,
    JudgeConfig,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "Conversation",
    "Generation",
    "JudgeConfig",
    "clear_backends",
    "get_backend",
]

BACKENDS = ("vllm", "openai", "transformers")

_backends: dict[tuple[object, ...], Backend] = {}
_lock = threading.Lock()


def _key(config: JudgeConfig) -> tuple[object, ...]:
    # The judge's name is left out: two judges configured alike share a backend.
    extra = json.dumps(dict(config.extra), sort_keys=True, default=str)
    return (
        config.backend,
        config.model,
        config.endpoint,
        config.api_key_env,
        float(config.temperature),
        int(config.max_tokens),
        extra,
    )


def _create(config: JudgeConfig) -> Backend:
    if config.backend == "transformers":
        from jury.backends.transformers_backend import TransformersBackend

        return TransformersBackend(config)
    if config.backend == "openai":
        from jury.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    if config.backend == "vllm":
        from jury.backends.vllm_backend import VLLMBackend

        return VLLMBackend(config)
    raise BackendError(
        f"judge {config.name!r}: unknown backend {config.backend!r} "
        f"(expected one of {', '.join(BACKENDS)})"
    )


def get_backend(config: JudgeConfig) -> Backend:
    """The process's backend for this configuration, created on first use.

    Creating a backend checks its configuration but loads no model: that happens
    on the first ``generate`` (or an explicit ``load()`` where a backend has one).
    """
    key = _key(config)
    with _lock:
        backend = _backends.get(key)
        if backend is None:
            backend = _backends[key] = _create(config)
        return backend


def clear_backends() -> None:
    """Forget every backend and loaded model of this process (tests, reloads).

    The vLLM engine is not released: vLLM cannot free a GPU engine cleanly inside
    a process, and a worker serves one judge for its lifetime.
    """
    from jury.backends import transformers_backend as hf

    with _lock:
        _backends.clear()
        hf.clear_loaded_models()
