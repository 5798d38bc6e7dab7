"""The three Aegis 2.0 judges, on vLLM, each reading its model path from the worker's
environment (${JURY_..._MODEL}); a judge whose variable is unset is not available."""

from django.db import migrations

JUDGES = [
    (
        "mixtral-8x22b",
        "${JURY_MIXTRAL_MODEL}",
        "Mixtral-8x22B-Instruct-v0.1: about 282 GB in bf16 (4-8 H100) or 141 GB in fp8",
        {"tensor_parallel_size": 4, "quantization": "fp8", "max_model_len": 16384},
    ),
    (
        "mistral-nemo-12b",
        "${JURY_NEMO_MODEL}",
        "Mistral-NeMo-12B-Instruct-2407: about 25 GB; its config claims a 1M-token context",
        {"max_model_len": 16384},
    ),
    (
        "gemma-2-27b",
        "${JURY_GEMMA_MODEL}",
        "Gemma-2-27B-it: about 54 GB, one H100; no system role (the prompt is one user turn)",
        {"max_model_len": 8192},
    ),
]


def create(apps, schema_editor):
    Judge = apps.get_model("jury", "Judge")
    for name, model, description, extra in JUDGES:
        Judge.objects.get_or_create(
            name=name,
            defaults={
                "backend": "vllm",
                "model": model,
                "description": description,
                "extra": extra,
                "temperature": 0.0,
                "max_tokens": 256,
                "enabled": True,
            },
        )


def remove(apps, schema_editor):
    apps.get_model("jury", "Judge").objects.filter(
        name__in=[name for name, *_ in JUDGES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("jury", "0001_initial")]

    operations = [migrations.RunPython(create, remove)]
