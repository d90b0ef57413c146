"""The order people expect of tag names, as one sortable string per tag (stored on the tag, so a
database index serves `ordering=version` a page at a time, whatever the repository's size).

Listed newest version first:

- a leading `v` is ignored (`v1.10` sorts as `1.10`);
- numeric segments compare as numbers (`1.10` above `1.9`), and more segments are more (`1.2.1`
  above `1.2.0` above `1.2`);
- under each version comes first the plain version, then its builds with a suffix, by suffix
  (`2.0.0`, `2.0.0-alpine`, `2.0.0-slim`), then its pre-releases, highest first (`2.0.0-rc.2`,
  `2.0.0-rc.1`, `2.0.0-beta`): a SemVer pre-release is below its release;
- a suffix is a pre-release when it starts with alpha, beta, rc, pre, preview, dev, snapshot,
  canary, nightly, next, milestone, ea, or the short a, b, c, m, followed by the end, a digit or a
  separator (`rc1`, `rc.1`, `beta-2`); pre-release identifiers compare as SemVer's do (numbers as
  numbers, below words; more identifiers are more);
- names that do not start with a number (after the `v`), such as `latest`, `edge` or `main`, come
  after every version, alphabetically.

Ties (`v1.0` and `1.0`) are broken by name where the key is used.
"""

from __future__ import annotations

import re

VERSION_RE = re.compile(r"^[vV]?(\d+(?:\.\d+)*)(?:[-_.+]?(.+))?$")
PRERELEASE_RE = re.compile(
    r"^(alpha|beta|rc|pre|preview|dev|snapshot|canary|nightly|next|milestone|ea|a|b|c|m)(?=$|[._-]|\d)", re.IGNORECASE
)
SHORT_WORDS = {"a": "alpha", "b": "beta", "c": "rc", "m": "milestone"}
IDENTIFIER_RE = re.compile(r"[a-z]+|\d+")

VERSION, OTHER = "0", "1"
PLAIN, VARIANT, PRERELEASE = "0", "1", "2"
END_OF_NUMBERS = "999"  # after every encoded segment: fewer segments list later
END_OF_WORD = "~"  # after every complemented character: a longer word lists first
END_OF_IDENTIFIERS = "2"  # after "0" (word) and "1" (number): more identifiers list first


def _descending_number(digits: str) -> str:
    """A number, encoded so that larger numbers sort first: the digit count's complement, then
    each digit's complement (tag names have at most 128 characters, so the count fits in 3)."""
    digits = digits.lstrip("0") or "0"
    return f"{999 - len(digits):03d}" + "".join(str(9 - int(c)) for c in digits)


def _descending_word(word: str) -> str:
    # '0'..'z' (0x30..0x7a) map to 'z'..'0'; the end mark sorts after all of them.
    return "".join(chr(0x7A - (ord(c) - 0x30)) for c in word) + END_OF_WORD


def _prerelease(suffix: str) -> str:
    key = []
    for i, identifier in enumerate(IDENTIFIER_RE.findall(suffix.lower())):
        if identifier.isdigit():
            key.append("1" + _descending_number(identifier))  # numbers rank below words (SemVer)
        else:
            key.append("0" + _descending_word(SHORT_WORDS.get(identifier, identifier) if i == 0 else identifier))
    return "".join(key) + END_OF_IDENTIFIERS


def version_sort_key(name: str) -> str:
    """A string whose ascending order is the order above."""
    match = VERSION_RE.match(name)
    if match is None:
        return OTHER + name.lower()
    numbers, suffix = match.group(1), match.group(2) or ""
    key = VERSION + "".join(_descending_number(n) for n in numbers.split(".")) + END_OF_NUMBERS
    if not suffix:
        return key + PLAIN
    if PRERELEASE_RE.match(suffix):
        return key + PRERELEASE + _prerelease(suffix)
    return key + VARIANT + suffix.lower()
