"""A hand-made agreement report (the shape `annotation.agreement.services.build_report`
returns), with hostile names, undefined statistics and a jury, for the chart tests."""

from typing import Any

SCRIPT = "<script>alert(1)</script>"
HOSTILE_CATEGORY = '"><img src=x onerror=alert(2)> & Co'


def summary(
    alpha: float | None,
    *,
    kappa: float | None = None,
    agreement: float | None = 0.8,
    n_items: int = 40,
    n_raters: int = 4,
    ci: tuple[float, float] | None = None,
    reason: str = "every vote has the same value",
) -> dict[str, Any]:
    """A `stats.summary` result; null statistics carry `reason`."""
    kappa = alpha if kappa is None and alpha is not None else kappa
    out: dict[str, Any] = {
        "n_items": n_items,
        "n_raters": n_raters,
        "fleiss_kappa": kappa,
        "krippendorff_alpha": alpha,
        "percent_agreement": agreement,
        "ci95": {
            "fleiss_kappa": list(ci) if ci and kappa is not None else None,
            "krippendorff_alpha": list(ci) if ci and alpha is not None else None,
        },
    }
    reasons = {}
    if alpha is None:
        reasons["krippendorff_alpha"] = reason
        reasons["ci95.krippendorff_alpha"] = f"no interval: {reason}"
    if kappa is None:
        reasons["fleiss_kappa"] = reason
        reasons["ci95.fleiss_kappa"] = f"no interval: {reason}"
    if agreement is None:
        reasons["percent_agreement"] = reason
    if reasons:
        out["reason"] = reasons
    return out


def agreement(kappa: float | None, agree: float | None, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "agreement": agree, "cohen_kappa": kappa}
    if kappa is None:
        out["reason"] = "no item in common" if n == 0 else "only one value"
    return out


def annotator(
    distribution: tuple[int, int, int],
    times: tuple[float, float, float, float, float] | None,
    *,
    kappas: dict[str, float | None],
    vs_majority: dict[str, Any],
    fast_votes: int = 0,
    gold: dict[str, float] | None = None,
    warnings: tuple[str, ...] = (),
) -> dict[str, Any]:
    n = sum(distribution)
    return {
        "n_votes": n,
        "label_distribution": dict(
            zip(("safe", "needs_caution", "unsafe"), distribution, strict=True)
        ),
        "time_ms": None
        if times is None
        else dict(zip(("min", "p25", "median", "p75", "max"), times, strict=True)),
        "fast_votes": fast_votes,
        "fast_share": fast_votes / n if times else None,
        "vs_majority": vs_majority,
        "vs_adjudicated": agreement(0.9, 0.95, 12),
        "vs_jury": agreement(0.55, 0.78, 30),
        "cohen_kappa": kappas,
        "gold": gold,
        "warnings": list(warnings),
    }


def sample_report() -> dict[str, Any]:
    fast = "18 of 40 votes took under 3 s"
    low = "kappa 0.12 with the others' majority (median 0.61)"
    return {
        "batch": "demo",
        "version": 1,
        "needs_caution_policy": "permissive",
        "n_dialogues": 40,
        "n_votes": 160,
        "label": summary(0.6123, ci=(0.5011, 0.7052), agreement=0.7812),
        "label_binary": summary(0.7034, ci=(0.6012, 0.7999), agreement=0.8543),
        "response_label": summary(
            None, agreement=None, n_items=0, n_raters=0, reason="no item has two votes"
        ),
        "imported_label": None,
        "categories": {
            "Violence": summary(0.4567, ci=(0.2, 0.65)),
            HOSTILE_CATEGORY: summary(None, reason="nobody chose this category"),
            "Hate/Identity Hate": summary(-0.0812, ci=(-0.3, 0.15)),
        },
        "annotators": {
            "anna": annotator(
                (20, 8, 12),
                (4100.0, 9000.0, 14250.0, 22000.0, 95000.0),
                kappas={"ben": 0.7123, SCRIPT: 0.1042, "dora": None},
                vs_majority=agreement(0.6512, 0.8, 40),
                gold={"n": 4, "label_accuracy": 0.75, "category_jaccard": 0.5},
            ),
            "ben": annotator(
                (22, 6, 12),
                (3500.0, 8000.0, 12000.0, 19000.0, 61000.0),
                kappas={"anna": 0.7123, SCRIPT: 0.0871, "dora": None},
                vs_majority=agreement(0.6034, 0.78, 40),
            ),
            SCRIPT: annotator(
                (35, 0, 5),
                (400.0, 900.0, 1800.0, 4500.0, 12000.0),
                kappas={"anna": 0.1042, "ben": 0.0871, "dora": None},
                vs_majority=agreement(0.1203, 0.55, 40),
                fast_votes=18,
                warnings=(fast, low),
            ),
            "dora": annotator(
                (3, 1, 0),
                None,
                kappas={"anna": None, "ben": None, SCRIPT: None},
                vs_majority=agreement(None, None, 0),
            ),
        },
        "pairwise": [
            {"a": "anna", "b": "ben", "cohen_kappa": 0.7123},
            {"a": "anna", "b": SCRIPT, "cohen_kappa": 0.1042},
            {"a": "ben", "b": SCRIPT, "cohen_kappa": 0.0871},
            {
                "a": "anna",
                "b": "dora",
                "cohen_kappa": None,
                "reason": "no dialogue rated by both",
            },
            {
                "a": "ben",
                "b": "dora",
                "cohen_kappa": None,
                "reason": "no dialogue rated by both",
            },
            {
                "a": SCRIPT,
                "b": "dora",
                "cohen_kappa": None,
                "reason": "no dialogue rated by both",
            },
        ],
        "warnings": [
            {"annotator": SCRIPT, "kind": "fast", "detail": fast},
            {"annotator": SCRIPT, "kind": "low_kappa", "detail": low},
        ],
        "over_time": [
            {
                "week": "2025-W14",
                "n_votes": 60,
                **summary(0.5512, ci=(0.41, 0.68), agreement=0.7421),
            },
            {
                "week": "2025-W15",
                "n_votes": 4,
                **summary(None, agreement=None, reason="no item has two votes"),
            },
            {
                "week": "2025-W16",
                "n_votes": 96,
                **summary(0.6633, ci=(0.55, 0.76), agreement=0.8125),
            },
        ],
        "jury": {
            "judges": ["gemma", f"judge {SCRIPT}"],
            "label": summary(0.5, ci=(0.3, 0.7)),
            "pairwise": [{"a": "gemma", "b": f"judge {SCRIPT}", "cohen_kappa": 0.5}],
            "per_judge": {
                "gemma": {
                    "n_votes": 30,
                    "vs_human": agreement(0.6012, 0.8333, 30),
                    "confusion": {
                        "safe": {"safe": 14, "unsafe": 3},
                        "unsafe": {"safe": 2, "unsafe": 11},
                    },
                },
                f"judge {SCRIPT}": {
                    "n_votes": 30,
                    "vs_human": agreement(0.3333, 0.6667, 30),
                    "confusion": {
                        "safe": {"safe": 10, "unsafe": 7},
                        "unsafe": {"safe": 3, "unsafe": 10},
                    },
                },
            },
            "decisions": {
                "n": 30,
                "confusion": {
                    "safe": {"safe": 13, "unsafe": 2, "needs_review": 2},
                    "unsafe": {"safe": 1, "unsafe": 10, "needs_review": 2},
                },
                "vs_human": agreement(0.7654, 0.8846, 26),
            },
        },
        "settings": {
            "fast_label_ms": 3000,
            "fast_share": 0.1,
            "low_kappa": 0.4,
            "n_resamples": 1000,
            "seed": 0,
        },
        "computed_at": "2025-04-18T10:00:00+00:00",
    }
