"""The openai backend: any OpenAI-compatible chat endpoint, such as ``vllm serve``.

One request per conversation, several in flight at once. Transport errors are
retried with a short exponential backoff; an HTTP error response is an answer,
not a transport problem, and becomes that item's error (DESIGN section 4: an
invalid vote is stored, never retried).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from jury.backends.base import (
    BackendError,
    BackendUnavailable,
    Conversation,
    Generation,
    JudgeConfig,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 16
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.25
DEFAULT_TIMEOUT_S = 120.0
SCHEMA_NAME = "jury_vote"
MAX_ERROR_CHARS = 500


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


class OpenAIBackend:
    """Chat completions over HTTP with the ``openai`` client.

    Options in ``config.extra``: ``max_in_flight`` (concurrent requests, default
    16), ``retries`` (after a connection error or timeout, default 3),
    ``backoff_s`` (first wait, doubled each retry, default 0.25) and
    ``timeout_s`` (per request, default 120).
    """

    def __init__(self, config: JudgeConfig) -> None:
        import openai

        if not config.endpoint:
            raise BackendError(
                f"judge {config.name!r}: the openai backend needs an endpoint "
                "(a base URL such as http://gpu-host:8000/v1)"
            )
        if not config.model:
            raise BackendError(f"judge {config.name!r}: no model given")
        extra = config.extra
        try:
            self.max_in_flight = int(extra.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT))
            self.retries = int(extra.get("retries", DEFAULT_RETRIES))
            self.backoff_s = float(extra.get("backoff_s", DEFAULT_BACKOFF_S))
            timeout_s = float(extra.get("timeout_s", DEFAULT_TIMEOUT_S))
        except (TypeError, ValueError) as exc:
            raise BackendError(f"judge {config.name!r}: bad option: {exc}") from exc
        if self.max_in_flight < 1 or self.retries < 0:
            raise BackendError(
                f"judge {config.name!r}: max_in_flight must be >= 1, retries >= 0"
            )
        self.config = config
        # A local `vllm serve` takes any key; the configuration names the variable
        # that holds a real one, never the key itself.
        api_key = (
            os.environ.get(config.api_key_env) if config.api_key_env else None
        ) or "EMPTY"
        if config.api_key_env and api_key == "EMPTY":
            logger.warning(
                "judge %s: $%s is not set; sending no API key",
                config.name,
                config.api_key_env,
            )
        # The client's own retries would also repeat 429s and 5xx responses.
        self._client = openai.OpenAI(
            base_url=config.endpoint,
            api_key=api_key,
            max_retries=0,
            timeout=timeout_s,
        )
        self._openai = openai

    def _request(self, conversation: Conversation, schema: Mapping[str, Any] | None):
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": [dict(message) for message in conversation],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if schema is not None:
            # The OpenAI-standard structured output, which vLLM's server enforces
            # with its structured-outputs engine (docs/features/structured_outputs.md
            # in vllm-project/vllm, "response_format" with "json_schema"). vLLM's
            # own extra_body={"structured_outputs": {"json": ...}} works there
            # only; this works with other compatible servers too.
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": dict(schema)},
            }
        return request

    def _one(
        self, conversation: Conversation, schema: Mapping[str, Any] | None
    ) -> Generation:
        openai = self._openai
        request = self._request(conversation, schema)
        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                response = self._client.chat.completions.create(**request)
                break
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                if attempt >= self.retries:
                    raise BackendUnavailable(
                        f"judge {self.config.name!r}: {self.config.endpoint} "
                        f"unreachable after {attempt + 1} tries: {exc}"
                    ) from exc
                wait = self.backoff_s * 2**attempt
                attempt += 1
                logger.warning(
                    "judge %s: %s (%s); retry %d of %d in %.2f s",
                    self.config.name,
                    type(exc).__name__,
                    exc,
                    attempt,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
            except openai.APIStatusError as exc:
                return Generation(
                    text="",
                    prompt_tokens=None,
                    completion_tokens=None,
                    latency_ms=_elapsed_ms(started),
                    error=f"HTTP {exc.status_code}: {exc.message}"[:MAX_ERROR_CHARS],
                )
            except openai.APIError as exc:
                # A response that is not a chat completion.
                return Generation(
                    text="",
                    prompt_tokens=None,
                    completion_tokens=None,
                    latency_ms=_elapsed_ms(started),
                    error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS],
                )
        latency_ms = _elapsed_ms(started)
        usage = response.usage
        if not response.choices:
            return Generation(
                text="",
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                latency_ms=latency_ms,
                error="the response has no choices",
            )
        return Generation(
            text=response.choices[0].message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency_ms=latency_ms,
        )

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        schema: Mapping[str, Any] | None,
    ) -> list[Generation]:
        """One request per conversation, at most ``max_in_flight`` at a time.

        Raises BackendUnavailable when an item's retries run out: the endpoint
        is down, and the whole chunk is better tried again later.
        """
        if not conversations:
            return []
        workers = min(self.max_in_flight, len(conversations))
        pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"jury-{self.config.name}"
        )
        futures: list[Future[Generation]] = [
            pool.submit(self._one, conversation, schema)
            for conversation in conversations
        ]
        try:
            return [future.result() for future in futures]
        finally:
            # After a failure, requests not yet sent are not sent.
            pool.shutdown(wait=True, cancel_futures=True)
