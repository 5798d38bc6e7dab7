"""The vllm backend by its contract with vLLM's offline API.

vLLM needs a GPU and cannot be installed here, so a stand-in ``vllm`` package
records how the backend calls it: ``LLM(model, **engine options)`` once per
process, ``LLM.chat(conversations, sampling_params=..., use_tqdm=False)`` once per
chunk, ``SamplingParams(temperature, max_tokens, structured_outputs=
StructuredOutputsParams(json=schema))``, and ``RequestOutput``-shaped results.
"""

import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from jury.backends import (
    BackendError,
    JudgeConfig,
    clear_backends,
    get_backend,
    vllm_backend,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["safe", "unsafe"]},
        "categories": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["verdict", "categories"],
}
CONFIG = JudgeConfig(
    name="mixtral",
    backend="vllm",
    model="mistralai/Mixtral-8x22B-Instruct-v0.1",
    temperature=0.0,
    max_tokens=200,
    extra={
        "tensor_parallel_size": 4,
        "quantization": "fp8",
        "max_model_len": 16384,
        "max_in_flight": 64,  # an openai option: must not reach vllm.LLM
    },
)


@dataclass
class FakeVLLM:
    """What the backend asked of vLLM."""

    engines: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVLLM]:
    calls = FakeVLLM()

    class StructuredOutputsParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class LLM:
        def __init__(self, model: str, **kwargs: Any) -> None:
            calls.engines.append({"model": model, **kwargs})

        def chat(self, messages: Any, **kwargs: Any) -> list[Any]:
            calls.chats.append({"messages": messages, **kwargs})
            # RequestOutput: prompt_token_ids, outputs[0].text / .token_ids.
            return [
                types.SimpleNamespace(
                    prompt_token_ids=list(range(len(conversation[-1]["content"]))),
                    outputs=[
                        types.SimpleNamespace(
                            text=f'{{"verdict": "safe", "n": {i}}}',
                            token_ids=list(range(10 + i)),
                        )
                    ],
                )
                for i, conversation in enumerate(messages)
            ]

    vllm = types.ModuleType("vllm")
    sampling_params = types.ModuleType("vllm.sampling_params")
    vllm.LLM = LLM  # type: ignore[attr-defined]
    vllm.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    sampling_params.StructuredOutputsParams = StructuredOutputsParams  # type: ignore[attr-defined]
    sampling_params.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    vllm.sampling_params = sampling_params  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling_params)
    monkeypatch.setattr(vllm_backend, "_engine", None)
    clear_backends()
    yield calls
    clear_backends()


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def test_getting_the_backend_starts_no_engine(fake_vllm: FakeVLLM) -> None:
    get_backend(CONFIG)

    assert fake_vllm.engines == []


def test_one_engine_serves_every_chunk_and_each_chunk_is_one_chat_call(
    fake_vllm: FakeVLLM,
) -> None:
    backend = get_backend(CONFIG)
    first = [user("a"), user("bbb"), user("cc")]

    backend.generate(first, schema=SCHEMA)
    backend.generate([user("dddd")], schema=SCHEMA)

    assert fake_vllm.engines == [
        {
            "model": "mistralai/Mixtral-8x22B-Instruct-v0.1",
            "tensor_parallel_size": 4,
            "quantization": "fp8",
            "max_model_len": 16384,
        }
    ]
    assert len(fake_vllm.chats) == 2
    chat = fake_vllm.chats[0]
    assert chat["messages"] == first
    assert chat["use_tqdm"] is False
    params = chat["sampling_params"].kwargs
    assert set(params) == {"temperature", "max_tokens", "structured_outputs"}
    assert params["temperature"] == 0.0
    assert params["max_tokens"] == 200
    assert params["structured_outputs"].kwargs == {"json": SCHEMA}


def test_loading_starts_the_engine_once_and_generating_reuses_it(
    fake_vllm: FakeVLLM,
) -> None:
    # given a backend whose engine a run loads before its first chunk
    backend = get_backend(CONFIG)

    # when it loads, and then judges a chunk
    backend.load()
    backend.generate([user("a")], schema=SCHEMA)

    # then one engine was started, by the load, and the chunk used it
    assert len(fake_vllm.engines) == 1
    assert len(fake_vllm.chats) == 1


def test_outputs_map_back_in_order_with_their_token_counts(
    fake_vllm: FakeVLLM,
) -> None:
    generations = get_backend(CONFIG).generate(
        [user("a"), user("bbb"), user("cc")], schema=SCHEMA
    )

    assert [g.text for g in generations] == [
        '{"verdict": "safe", "n": 0}',
        '{"verdict": "safe", "n": 1}',
        '{"verdict": "safe", "n": 2}',
    ]
    assert [g.prompt_tokens for g in generations] == [1, 3, 2]
    assert [g.completion_tokens for g in generations] == [10, 11, 12]
    assert all(g.error == "" for g in generations)
    assert len({g.latency_ms for g in generations}) == 1  # an even share


def test_without_a_schema_no_structured_outputs_are_asked(
    fake_vllm: FakeVLLM,
) -> None:
    get_backend(CONFIG).generate([user("a")], schema=None)

    assert set(fake_vllm.chats[0]["sampling_params"].kwargs) == {
        "temperature",
        "max_tokens",
    }


def test_judges_of_the_same_model_share_the_processs_engine(
    fake_vllm: FakeVLLM,
) -> None:
    get_backend(CONFIG).generate([user("a")], schema=SCHEMA)
    warmer = get_backend(replace(CONFIG, name="warm", temperature=0.7))
    warmer.generate([user("b")], schema=SCHEMA)

    assert len(fake_vllm.engines) == 1
    assert fake_vllm.chats[1]["sampling_params"].kwargs["temperature"] == 0.7


def test_a_second_model_in_the_same_process_is_refused(fake_vllm: FakeVLLM) -> None:
    get_backend(CONFIG).generate([user("a")], schema=SCHEMA)
    gemma = replace(CONFIG, name="gemma", model="google/gemma-2-27b-it", extra={})

    with pytest.raises(BackendError, match="one judge per worker"):
        get_backend(gemma).generate([user("a")], schema=SCHEMA)
    assert len(fake_vllm.engines) == 1


def test_no_engine_for_an_empty_chunk(fake_vllm: FakeVLLM) -> None:
    assert get_backend(CONFIG).generate([], schema=SCHEMA) == []
    assert fake_vllm.engines == []


def test_importing_the_backends_imports_no_model_library() -> None:
    # A fresh interpreter: this one has loaded torch for the other tests.
    code = (
        "import sys\n"
        "import jury.backends, jury.backends.transformers_backend, jury.backends.openai_backend\n"
        "import jury.backends.vllm_backend\n"
        "heavy = {'vllm', 'torch', 'transformers', 'xgrammar', 'openai'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
