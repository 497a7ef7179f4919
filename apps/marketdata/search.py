"""Stock search over the whole listing: by code, Hangul name, initial consonants (초성) and romanised name.

The index is built once per process from the listed stocks (:func:`stock_search`; rebuilt after
``SEARCH_INDEX_SECONDS`` or at once when this process changes the stocks) and answers from memory: each name is
kept lower-cased, as its string of initial consonants (삼성전자 → ㅅㅅㅈㅈ) and as a romanised "sound key", so a
query is a few substring tests per stock (C-level ``in`` or one compiled regex), well under a millisecond for the
~2,900 stocks of KRX.

Matching, best first:
1. the code (exact, then prefix);
2. the name (exact, prefix, anywhere; Latin letters in names, e.g. NAVER or SK, case-insensitively);
3. initial consonants: a query of jamo consonants matches the names' 초성 (ㅅㅅㅈㅈ → 삼성전자); jamo mixed with
   syllables match syllable by syllable (삼ㅅ → 삼성...);
4. the romanised name: the Revised Romanization of the Hangul (삼성전자 → samseongjeonja) reduced to a sound key
   that also matches common English spellings (samsung, hyundai, kakao, celltrion, posco).
Ties go to the collection universe, then to the larger market cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
PER_INITIAL = 588  # 21 medials × 28 finals
INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
# Revised Romanization of Korean (국어의 로마자 표기법, 2000), letter by letter (no sound-change rules).
RR_INITIALS = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h")
RR_MEDIALS = ("a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we", "wi",
              "yu", "eu", "ui", "i")  # fmt: skip
RR_FINALS = ("", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p", "p", "t", "t",
             "ng", "t", "t", "k", "t", "p", "t")  # fmt: skip

MAX_QUERY = 40  # characters; no stock name is longer than this
MAX_RESULTS = 30

# match kinds, best first
(CODE_EXACT, CODE_PREFIX, NAME_EXACT, NAME_PREFIX, NAME_IN, CHOSUNG_PREFIX, CHOSUNG_IN, ROMAN_EXACT, ROMAN_PREFIX,
 ROMAN_IN) = range(10)  # fmt: skip
KIND_NAMES = ("code", "code", "name", "name", "name", "chosung", "chosung", "roman", "roman", "roman")


def is_syllable(ch: str) -> bool:
    return HANGUL_FIRST <= ord(ch) <= HANGUL_LAST


def chosung(text: str) -> str:
    """Each Hangul syllable replaced by its initial consonant; other characters lower-cased (삼성SDI → ㅅㅅsdi)."""
    return "".join(INITIALS[(ord(ch) - HANGUL_FIRST) // PER_INITIAL] if is_syllable(ch) else ch.lower() for ch in text)


def romanize(text: str) -> str:
    """Revised Romanization, syllable by syllable, lower case; other characters lower-cased (카카오 → kakao)."""
    out = []
    for ch in text:
        if is_syllable(ch):
            index = ord(ch) - HANGUL_FIRST
            out.append(
                RR_INITIALS[index // PER_INITIAL] + RR_MEDIALS[index % PER_INITIAL // 28] + RR_FINALS[index % 28]
            )
        else:
            out.append(ch.lower())
    return "".join(out)


_SOUND_STEPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        (r"[^a-z0-9]", ""),  # spaces, punctuation
        (r"ph", "p"), (r"sh", "s"), (r"ch", "j"), (r"ck", "k"), (r"c(?=[eiy])", "s"), (r"c", "k"), (r"x", "ks"),
        (r"q", "k"), (r"v", "b"), (r"f", "p"), (r"z", "j"),
        (r"eo", "o"), (r"eu", ""), (r"oo", "u"), (r"u", "o"), (r"(ae|ai|ay|oe)", "e"), (r"ee", "i"),
        (r"k", "g"), (r"t", "d"), (r"p", "b"), (r"r", "l"),
        (r"([a-z])\1+", r"\1"),  # doubled letters (kk, ll, ss)
        (r"(?<=[aeiou])h", ""), (r"wh", "hw"),
    )
)  # fmt: skip


def sound_key(text: str) -> str:
    """A loose key of how a romanised name sounds, so that RR and common English spellings meet (samseong and
    samsung → samsong; hyeondae and hyundai → hyonde). Used for Latin queries only."""
    key = text.lower()
    for pattern, repl in _SOUND_STEPS:
        key = pattern.sub(repl, key)
    return key


def _initial_class(jamo: str) -> str:
    """A regex class matching any syllable whose initial is ``jamo`` (or the jamo itself)."""
    start = HANGUL_FIRST + INITIALS.index(jamo) * PER_INITIAL
    return f"[{jamo}{chr(start)}-{chr(start + PER_INITIAL - 1)}]"


@dataclass(frozen=True, slots=True)
class Entry:
    code: str
    name: str
    market: str
    in_universe: bool
    market_cap: int
    halted: bool
    administrative: bool
    warning: str
    name_lower: str
    name_chosung: str
    name_sound: str


@dataclass(frozen=True, slots=True)
class Hit:
    entry: Entry
    kind: int

    @property
    def match(self) -> str:
        return KIND_NAMES[self.kind]


class SearchIndex:
    """The listing in memory, ready for :meth:`search`."""

    def __init__(self, stocks: Iterable[Sequence]) -> None:
        """``stocks``: (code, name, market, in_universe, market_cap, halted, administrative, warning) rows."""
        self.entries: list[Entry] = []
        for code, name, market, in_universe, market_cap, halted, administrative, warning in stocks:
            self.entries.append(
                Entry(
                    code=code, name=name, market=market, in_universe=bool(in_universe), market_cap=market_cap or 0,
                    halted=bool(halted), administrative=bool(administrative), warning=warning or "",
                    name_lower=name.lower(), name_chosung=chosung(name), name_sound=sound_key(romanize(name)),
                )
            )  # fmt: skip
        # Ties: universe first, then market cap: the order of the entries (a stable sort keeps it per kind).
        self.entries.sort(key=lambda e: (not e.in_universe, -e.market_cap, e.code))

    def __len__(self) -> int:
        return len(self.entries)

    def search(self, query: str, *, limit: int = 10) -> list[Hit]:
        """The best ``limit`` stocks for ``query`` (already validated: 1..MAX_QUERY characters)."""
        q = query.strip()
        if not q:
            return []
        lower = q.lower()
        upper = q.upper()
        has_jamo = any(ch in INITIALS for ch in q)
        all_jamo = has_jamo and all(ch in INITIALS or ch == " " for ch in q)
        jamo_query = q.replace(" ", "")
        pattern = None
        if has_jamo and not all_jamo:
            pattern = re.compile(
                "".join(_initial_class(ch) if ch in INITIALS else re.escape(ch.lower()) for ch in q.replace(" ", ""))
            )
        latin = bool(re.fullmatch(r"[A-Za-z0-9 .&\-]+", q)) and any(ch.isalpha() for ch in q)
        sound = sound_key(q) if latin else ""
        best: list[list[Entry]] = [[] for _ in KIND_NAMES]
        for entry in self.entries:
            if entry.code == upper:
                best[CODE_EXACT].append(entry)
            elif entry.code.startswith(upper):
                best[CODE_PREFIX].append(entry)
            elif entry.name_lower == lower:
                best[NAME_EXACT].append(entry)
            elif entry.name_lower.startswith(lower):
                best[NAME_PREFIX].append(entry)
            elif lower in entry.name_lower:
                best[NAME_IN].append(entry)
            elif all_jamo and entry.name_chosung.startswith(jamo_query):
                best[CHOSUNG_PREFIX].append(entry)
            elif all_jamo and jamo_query in entry.name_chosung:
                best[CHOSUNG_IN].append(entry)
            elif pattern is not None and (found := pattern.search(entry.name_lower)) is not None:
                best[CHOSUNG_PREFIX if found.start() == 0 else CHOSUNG_IN].append(entry)
            elif len(sound) >= 2 and entry.name_sound == sound:
                best[ROMAN_EXACT].append(entry)
            elif len(sound) >= 2 and entry.name_sound.startswith(sound):
                best[ROMAN_PREFIX].append(entry)
            elif len(sound) >= 3 and sound in entry.name_sound:
                best[ROMAN_IN].append(entry)
        hits: list[Hit] = []
        for kind, entries in enumerate(best):
            for entry in entries:
                hits.append(Hit(entry, kind))
                if len(hits) >= limit:
                    return hits
        return hits
