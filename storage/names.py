"""Text that names things: people's names, titles, release names.

Two jobs, one rule for every title and name (typed in chat, a display name, an import).
`clean` keeps text as a reader sees it: what shows nothing goes (bidi overrides and isolates,
zero-width and other format characters, Unicode's default-ignorable code points, control
characters, combining marks with no base to sit on), what shows as a blank becomes a space
(the braille blank and the Hangul fillers), and whitespace is collapsed. So a title cannot
reorder the text around it or hide a second meaning, and "Jan\u2800Beulich" is "Jan Beulich".
`name_key` is what makes two names the same name: NFKC, casefold, and the Cyrillic and Greek
letters that look like Latin ones folded to them, so "Jan Beulich" with a Cyrillic "а" is
taken when "Jan Beulich" is.

The look-alike table is kept by hand rather than taken from Unicode's confusables (UTS #39):
its skeletons also fold Latin to Latin ("rn" and "m", "l" and "I", "0" and "O"), which would
make different real names one name, and `mixed_script` already refuses words that mix
scripts; `confusable-homoglyphs`, which carries them, loads its tables for about 18 MB of an
IRC-only bot's memory. The default-ignorable code points are listed here because the
standard library's `unicodedata` does not carry that property; the `regex` module does, but
costs an IRC-only bot about 2 MB of memory for these few ranges.
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


# Drawn as an empty cell, one character wide: a space to a reader.
_BLANK = re.compile("[\u2800\u3164\u115f\u1160\uffa0]")
# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties) beyond the format (Cf)
# characters, which are removed by category: the combining grapheme joiner, Khmer inherent
# vowels, variation selectors, the unassigned U+2065, U+FFF0-U+FFF8 and the tag plane.
_IGNORABLE = re.compile("[\u034f\u17b4\u17b5\u180b-\u180f\u2065\ufe00-\ufe0f\ufff0-\ufff8"
                        "\U000e0000-\U000e0fff]")


def _format(ch: str) -> bool:
    return unicodedata.category(ch) == "Cf"


def _baseless(word: str) -> str:
    """`word` without the combining marks at its start: they have no base to sit on."""
    start = 0
    while start < len(word) and unicodedata.category(word[start])[0] == "M":
        start += 1
    return word[start:]


def clean(text: str) -> str:
    """`text` as a reader sees it: nothing invisible, blanks as spaces, whitespace collapsed."""
    text = _CONTROL.sub(" ", text)
    if text.isascii():
        return " ".join(text.split())
    text = _IGNORABLE.sub("", _BLANK.sub(" ", text))
    text = "".join(ch for ch in text if not _format(ch))
    return " ".join(w for w in map(_baseless, text.split()) if w)


def visible(text: str) -> bool:
    """Whether `text` shows anything: a letter, digit, symbol or punctuation that is not a
    blank (a mark alone shows nothing: it needs a base)."""
    return any(unicodedata.category(ch)[0] in "LNSP" for ch in clean(text))


def name_key(name: str) -> str:
    """The form under which two names are the same name."""
    folded = unicodedata.normalize("NFKC", clean(name)).casefold()
    # NFKC can turn a compatibility character into a blank (U+FFA0 into U+3164): clean again.
    return clean(unicodedata.normalize("NFKC", folded.translate(_CONFUSABLE)))


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
