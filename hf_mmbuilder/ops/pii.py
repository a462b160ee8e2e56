"""PII redaction of the DJ ``text`` column as a batched ``.map`` op, with per-type counts in the stats.

Entities: e-mail addresses, phone numbers (international ``+CC`` numbers, North American, Chinese
mobile and common European/Asian national layouts), national id numbers (the 18-character Chinese
resident id with its ISO 7064 check digit, US SSN, UK National Insurance number), IPv4/IPv6
addresses, payment card numbers (13-19 digits, Luhn-checked) and, optionally, URLs.

DJ tokens and role markers are matched first and passed through unchanged, and digit patterns
only match when not glued to a path, word or longer number, so media placeholders, role markers,
paths such as ``coco/000000033471.jpg`` and ordinary numbers (years, prices, counts) survive.
Rows are screened with one RE2 pass in Arrow (linear time); only rows that could hold an entity
go through the validating Python regex.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import DEFAULT_TOKENS, ROLE_MARKER_PATTERN, SpecialTokens
from ._batch import STATS_COLUMN, column, merge_stats, output, protected_pattern

PII_TYPES = ("email", "phone", "id", "ip", "credit_card", "url")

DEFAULT_REPLACEMENTS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "id": "[ID]",
    "ip": "[IP]",
    "credit_card": "[CREDIT_CARD]",
    "url": "[URL]",
}

# A digit entity must not continue a word, number or path on either side.
_OPEN = r"(?<![0-9A-Za-z_/\\.\-+])"
_CLOSE = r"(?![0-9A-Za-z_/\\]|[.\-][0-9A-Za-z])"

_ENTITY_PATTERNS = {
    "url": r"(?:https?://|www\.)[^\s<>\[\]\"'`]+[^\s<>\[\]\"'`.,;:!?)]",
    "email": r"(?<![A-Za-z0-9._%+\-\u00C0-\u024F])[A-Za-z0-9._%+\-\u00C0-\u024F]+@[A-Za-z0-9\-\u00C0-\u024F]+(?:\.[A-Za-z0-9\-\u00C0-\u024F]+)*\.[A-Za-z]{2,24}(?![A-Za-z0-9])",
    "cn_id": _OPEN + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _CLOSE,
    "ssn": _OPEN + r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}" + _CLOSE,
    "nino": r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])",
    "card": _OPEN + r"\d(?:[ \-]?\d){12,18}" + _CLOSE,
    "ipv4": _OPEN + r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)" + _CLOSE,
    "ipv6": r"(?<![0-9A-Fa-f:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4})(?![0-9A-Fa-f:])",
    "phone": _OPEN + "(?:"
    # International: +CC then groups of digits, optional (area) group.
    r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567.
    r"|(?:\(\d{3}\) ?|\d{3}[.\-])\d{3}[.\-]\d{4}"
    # Chinese mobile: 11 digits, optionally 3-4-4.
    r"|1[3-9]\d(?:[ \-]?\d{4}){2}"
    # National numbers with a trunk 0: 01 23 45 67 89, 030 12345678, 03-1234-5678, 090-1234-5678.
    r"|0\d{1,4}(?:[ .\-]\d{2,8}){1,4}"
    ")" + _CLOSE,
}

_KINDS = {"url": "url", "email": "email", "cn_id": "id", "ssn": "id", "nino": "id", "card": "credit_card", "ipv4": "ip", "ipv6": "ip", "phone": "phone"}

# A superset of every entity, for the linear-time RE2 screen over the whole batch.
_SCREEN = r"@|\d[\d .()\-]{5,}\d|\d+\.\d+\.\d+\.\d+|[0-9A-Fa-f]*:[0-9A-Fa-f]*:|[A-Z]{2} ?\d{2} ?\d{2}"
_URL_SCREEN = r"|https?://|www\."

_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def luhn_valid(digits: str) -> bool:
    """Luhn checksum of a digit string (payment cards).

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def cn_id_valid(number: str) -> bool:
    """ISO 7064 MOD 11-2 check digit of an 18-character Chinese resident id.

    Example:
        >>> cn_id_valid("11010519491231002X"), cn_id_valid("110105194912310021")
        (True, False)
    """
    total = sum(int(char) * weight for char, weight in zip(number[:17], _CN_ID_WEIGHTS))
    return _CN_ID_CHECK[total % 11] == number[17].upper()


def _compile(urls: bool, tokens: SpecialTokens, role_pattern: str) -> re.Pattern:
    alternatives = [f"(?P<protected>{protected_pattern(tokens, role_pattern)})"]
    for name, pattern in _ENTITY_PATTERNS.items():
        if name == "url" and not urls:
            continue
        alternatives.append(f"(?P<{name}>{pattern})")
    return re.compile("|".join(alternatives))


def redact_text(
    text: str,
    *,
    urls: bool = False,
    replacements: Optional[Mapping[str, str]] = None,
    tokens: SpecialTokens = DEFAULT_TOKENS,
    role_pattern: str = ROLE_MARKER_PATTERN,
) -> tuple[str, dict[str, int]]:
    """Redact the PII of one text; returns the new text and the count per type of ``PII_TYPES``.

    O(len(text)) regex scan; card numbers failing Luhn and ids failing their check digit stay.

    Example:
        >>> redact_text("[[human]]: call +44 20 7946 0958 or mail x@y.org <__dj__image>")
        ('[[human]]: call [PHONE] or mail [EMAIL] <__dj__image>', {'email': 1, 'phone': 1, 'id': 0, 'ip': 0, 'credit_card': 0, 'url': 0})
    """
    redactor = RedactPII(urls=urls, replacements=dict(replacements or {}), tokens=tokens, role_pattern=role_pattern)
    counts = {kind: [0] for kind in PII_TYPES}
    redacted = redactor.redact(text, counts, 0)
    return redacted, {kind: values[0] for kind, values in counts.items()}


@dataclasses.dataclass(frozen=True)
class RedactPII:
    """Batched ``.map`` op replacing PII in ``text`` by typed placeholders and counting it per row.

    Writes the redacted ``text`` and adds ``pii_email``, ``pii_phone``, ``pii_id``, ``pii_ip``,
    ``pii_credit_card`` and ``pii_url`` (int64 counts) to the ``__dj__stats__`` struct, keeping
    the fields already there. Media columns are never read or changed.

    Parameters
    ----------
    urls : bool
        Also redact ``http(s)://`` and ``www.`` URLs (off by default: URLs in instruction data are
        usually content, not personal data).
    replacements : dict, optional
        Placeholder per PII type (defaults: ``[EMAIL]``, ``[PHONE]``, ``[ID]``, ``[IP]``,
        ``[CREDIT_CARD]``, ``[URL]``).
    tokens : SpecialTokens
        The dataset's DJ tokens (never redacted).

    Notes
    -----
    One RE2 screen over the batch (Arrow compute, linear time), then the validating Python regex
    on windows around the screen's hits in the screened rows only; unscreened rows are not
    copied. O(total bytes) with a small constant for clean text.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["身份证号11010519491231002X，电话138 0013 8000"]})
        >>> ds.map(RedactPII(), batched=True)[0]["text"]
        '身份证号[ID]，电话[PHONE]'
    """

    urls: bool = False
    replacements: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tokens: SpecialTokens = DEFAULT_TOKENS
    role_pattern: str = ROLE_MARKER_PATTERN

    def __post_init__(self):
        unknown = set(self.replacements) - set(PII_TYPES)
        if unknown:
            raise ValueError(f"unknown PII type(s) in replacements: {sorted(unknown)}; known: {PII_TYPES}")
        # A plain dict keeps the op hashable-by-content for the datasets fingerprint.
        object.__setattr__(self, "replacements", dict(sorted(self.replacements.items())))

    def _pattern(self) -> re.Pattern:
        return _compiled(self.urls, self.tokens, self.role_pattern)

    def _replace(self, match: re.Match, counts: dict[str, list], row: int) -> str:
        name = match.lastgroup
        found = match.group()
        if name == "protected":
            return found
        if name == "card":
            digits = re.sub(r"[ \-]", "", found)
            if not luhn_valid(digits):
                return found
        elif name == "cn_id" and not cn_id_valid(found):
            return found
        elif name == "phone":
            # Dates such as 03-12-2020 share the layout of short national numbers; count digits.
            digits = sum(char.isdigit() for char in found)
            if not (8 if found.startswith("+") else 9) <= digits <= 15:
                return found
        kind = _KINDS[name]
        counts[kind][row] += 1
        return self.replacements.get(kind, DEFAULT_REPLACEMENTS[kind])

    def redact(self, text: str, counts: dict, row: int) -> str:
        """Redact one text, adding to ``counts[type][row]``; scans only windows around screen hits.

        A window spans 64 characters either side of a hit, widened to whitespace, so it holds any
        entity the hit belongs to whole (entities never start that far before their digits or
        ``@``); lookbehinds still see the text before a window.

        Example:
            >>> counts = {kind: [0] for kind in PII_TYPES}
            >>> RedactPII().redact("ip 10.0.0.1 here", counts, 0), counts["ip"]
            ('ip [IP] here', [1])
        """
        windows: list[list[int]] = []
        for hit in _screen(self.urls).finditer(text):
            start = max(0, hit.start() - 64)
            while start > 0 and not text[start - 1].isspace():
                start -= 1
            end = min(len(text), hit.end() + 64)
            while end < len(text) and not text[end].isspace():
                end += 1
            if windows and start <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], end)
            else:
                windows.append([start, end])
        pieces, last = [], 0
        pattern = self._pattern()
        for start, end in windows:
            for match in pattern.finditer(text, start, end):
                if match.start() < last:
                    continue
                replacement = self._replace(match, counts, row)
                if replacement != match.group():
                    pieces.append(text[last : match.start()])
                    pieces.append(replacement)
                    last = match.end()
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)

    def __call__(self, batch):
        original = column(batch, "text")
        if original is None:
            raise ValueError("the batch has no 'text' column (the DJ text column is required)")
        n = len(original)
        screen = _SCREEN + (_URL_SCREEN if self.urls else "")
        flagged = pc.fill_null(pc.match_substring_regex(original, screen), False)
        candidates = np.flatnonzero(flagged.to_numpy(zero_copy_only=False))
        counts = {kind: np.zeros(n, dtype=np.int64) for kind in PII_TYPES}
        redacted = original
        if len(candidates):
            before = original.take(pa.array(candidates)).to_pylist()
            after = [self.redact(text, counts, row) for row, text in zip(candidates.tolist(), before)]
            # Only the screened rows are rebuilt; the rest of the column is reused as is.
            redacted = pc.replace_with_mask(original, flagged, pa.array(after, type=original.type))
        fields = {f"pii_{kind}": pa.array(values) for kind, values in counts.items()}
        return output(batch, {"text": redacted, STATS_COLUMN: merge_stats(batch, fields)})


_PATTERNS: dict[tuple, re.Pattern] = {}


def _compiled(urls: bool, tokens: SpecialTokens, role_pattern: str) -> re.Pattern:
    key = (urls, tokens, role_pattern)
    if key not in _PATTERNS:
        _PATTERNS[key] = _compile(urls, tokens, role_pattern)
    return _PATTERNS[key]


_SCREENS: dict[bool, re.Pattern] = {}


def _screen(urls: bool) -> re.Pattern:
    if urls not in _SCREENS:
        _SCREENS[urls] = re.compile(_SCREEN + (_URL_SCREEN if urls else ""))
    return _SCREENS[urls]
