"""Text that names things: people's names, titles, release names.

Two jobs. `clean` removes what a reader cannot see (bidi overrides and isolates, zero-width
and other format characters, control characters), so a title cannot reorder the text around
it or hide a second meaning. `name_key` is what makes two names the same name: NFKC, casefold,
collapsed whitespace, and the Cyrillic and Greek letters that look like Latin ones folded to
them, so "Jan Beulich" with a Cyrillic "а" is taken when "Jan Beulich" is.
"""

from __future__ import annotations

import re
import unicodedata

# Bidi embeddings/overrides (U+202A–U+202E) and isolates (U+2066–U+2069) are format (Cf)
# characters; so are zero-width spaces and joiners, soft hyphens and tag characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
# Suffixes the status page routes on (`/release/NAME.txt`, `.json`, `.atom`, `.svg`).
_ROUTE_SUFFIXES = (".txt", ".json", ".atom", ".svg", ".html")
RESERVED_NAMES = frozenset({"unclaimed", "done", "none", "nobody", "?", "??", "???", "tbd",
                            "n/a", "deferred", "dropped", "duplicate"})

# Letters of other scripts drawn like Latin ones (lower case: the key is casefolded first).
_CONFUSABLE = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i",
    "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ı": "i",
})


def clean(text: str) -> str:
    """`text` without invisible format and control characters, whitespace collapsed."""
    text = _CONTROL.sub(" ", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


def visible(text: str) -> bool:
    """Whether `text` shows anything: a letter, digit, mark, symbol or punctuation."""
    return any(unicodedata.category(ch)[0] in "LNMSP" for ch in text)


def name_key(name: str) -> str:
    """The form under which two names are the same name."""
    folded = unicodedata.normalize("NFKC", clean(name)).casefold()
    return unicodedata.normalize("NFKC", folded.translate(_CONFUSABLE))


def _scripts(word: str) -> set[str]:
    out = set()
    for ch in word:
        if ch.isalpha():
            script = unicodedata.name(ch, "").split(" ")[0]
            out.add(script)
    return out


def mixed_script(name: str) -> bool:
    """A word mixing Latin with Cyrillic or Greek letters: a look-alike, not a name."""
    return any("LATIN" in s and bool(s & {"CYRILLIC", "GREEK"}) for s in map(_scripts, name.split()))


def release_name_problem(name: str) -> str | None:
    """Why `name` cannot name a release, or None when it can."""
    if not _RELEASE.fullmatch(name) or name in (".", ".."):
        return (f"{name!r} is not a release name: up to 32 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit")
    if name.lower().endswith(_ROUTE_SUFFIXES):
        return f"{name!r} is not a release name: it must not end in {', '.join(_ROUTE_SUFFIXES)}"
    return None
