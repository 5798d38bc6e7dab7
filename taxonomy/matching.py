"""Map the many spellings of a category (names, codes, case, old Aegis 1.0 names) to one.

Pure functions over plain data: imports, label forms and the jury's parser all resolve
category text through `CategoryIndex`, so "s1", "Violence", "VIOLENCE" and
"S1: Violence" mean the same thing everywhere.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Spellings seen in earlier Aegis releases and guard outputs, normalised as `_key` does.
ALIASES = {
    "sexualminor": "Sexual (minor)",
    "sexualminors": "Sexual (minor)",
    "gunsillegalweapons": "Guns and Illegal Weapons",
    "gunsandweapons": "Guns and Illegal Weapons",
    "controlledsubstances": "Controlled/Regulated Substances",
    "suicideselfharm": "Suicide and Self Harm",
    "selfharm": "Suicide and Self Harm",
    "hate": "Hate/Identity Hate",
    "identityhate": "Hate/Identity Hate",
    "pii": "PII/Privacy",
    "privacy": "PII/Privacy",
    "criminalplanning": "Criminal Planning/Confessions",
    "needscaution": "Needs Caution",
    "misinformation": "Political/Misinformation/Conspiracy",
    "fraud": "Fraud/Deception",
    "copyright": "Copyright/Trademark/Plagiarism",
}

_CODE_PREFIX = re.compile(r"^\s*(S\d{1,3})\s*[:.\-]\s*(.+)$", re.IGNORECASE)
_CODE_ONLY = re.compile(r"^\s*S(\d{1,3})\s*$", re.IGNORECASE)


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold().replace("&", "and"))


@dataclass(frozen=True)
class CategoryRef:
    id: int
    code: str
    name: str
    retired: bool = False


class CategoryIndex:
    """Resolve category text against one taxonomy version's categories."""

    def __init__(self, categories: Iterable[CategoryRef]) -> None:
        self.categories = list(categories)
        self._by_name = {c.name: c for c in self.categories}
        self._by_code = {c.code.upper(): c for c in self.categories}
        self._by_key = {_key(c.name): c for c in self.categories}

    def resolve(self, text: str) -> CategoryRef | None:
        """The category `text` names, or None when it names none of them."""
        text = text.strip()
        if not text:
            return None
        if text in self._by_name:
            return self._by_name[text]
        code = _CODE_ONLY.match(text)
        if code:
            return self._by_code.get(f"S{int(code.group(1))}")
        prefixed = _CODE_PREFIX.match(text)
        if prefixed:
            return self._by_code.get(prefixed.group(1).upper()) or self.resolve(
                prefixed.group(2)
            )
        key = _key(text)
        found = self._by_key.get(key)
        if found is None and key in ALIASES:
            found = self._by_name.get(ALIASES[key])
        return found

    def resolve_many(self, texts: Iterable[str]) -> tuple[list[CategoryRef], list[str]]:
        """Resolved categories in first-seen order without repeats, and unknown texts."""
        found: list[CategoryRef] = []
        unknown: list[str] = []
        for text in texts:
            ref = self.resolve(text)
            if ref is None:
                if text.strip():
                    unknown.append(text.strip())
            elif ref not in found:
                found.append(ref)
        return found, unknown


def split_category_list(value: object) -> list[str]:
    """Category cells come as lists or as ", "-joined strings; names never hold commas."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if not text or text.lower() in {"nan", "none", "null"}:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]
