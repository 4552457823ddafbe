"""English text corpora for calibration and perplexity, with splits that never overlap.

Jane Austen's six novels come from Debian's ``r-cran-janeaustenr`` (public domain, clean
text, no boilerplate). ``qcompile assets fetch austen`` downloads the .deb (no root
needed) and unpacks it into the cache. The texts live in an R lazy-load database
(``data/Rdata.rdb``): one zlib block per novel, each an R character vector (one element
per line) in R's XDR serialization, which :func:`_read_rdb` decodes directly.

Splits: **evaluation text is *Emma***, **calibration text is *Persuasion*** — different
books, so calibration never sees evaluation text.
"""
from __future__ import annotations

import functools
import os
import re
import struct
import zlib
from pathlib import Path

from qcompile.errors import QCompileError

CACHE = Path(os.environ.get("QCOMPILE_CACHE", Path.home() / ".cache" / "qcompile"))
AUSTEN_DIR = CACHE / "janeaustenr"
RDB = AUSTEN_DIR / "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
# block order in Rdata.rdb (alphabetical object names in the R package)
BOOKS = ["emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"]
SPLITS = {"eval": "emma", "calib": "persuasion"}


def _strsxp(buf: bytes) -> list[str]:
    """Decode an R XDR-serialized character vector (format version 3, no attributes)."""
    if buf[:2] != b"X\n":
        raise QCompileError("janeaustenr data is not in R's XDR serialization format")
    version = struct.unpack(">i", buf[2:6])[0]
    pos = 14
    if version == 3:
        n = struct.unpack(">i", buf[pos:pos + 4])[0]
        pos += 4 + n  # native encoding name
    flags, length = struct.unpack(">ii", buf[pos:pos + 8])
    if flags & 0xFF != 16:  # STRSXP
        raise QCompileError(f"janeaustenr block is R type {flags & 0xFF}, expected a character vector")
    pos += 8
    lines = []
    for _ in range(length):
        _, n = struct.unpack(">ii", buf[pos:pos + 8])
        pos += 8
        if n < 0:  # NA_character_
            lines.append("")
            continue
        lines.append(buf[pos:pos + n].decode("utf-8"))
        pos += n
    return lines


@functools.lru_cache(maxsize=1)
def _read_rdb(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    books, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj()
        books.append(_strsxp(d.decompress(data[pos + 4:])))
        pos = len(data) - len(d.unused_data)
    return books


def austen(book: str) -> str:
    """The text of one novel (``emma``, ``persuasion``, ...), paragraphs joined by blank lines,
    line breaks inside a paragraph turned into spaces."""
    if book not in BOOKS:
        raise QCompileError(f"unknown Austen novel '{book}'", hint=f"known: {', '.join(BOOKS)}")
    if not RDB.exists():
        raise QCompileError(f"Jane Austen corpus not found in {AUSTEN_DIR}",
                            hint="run `qcompile assets fetch austen`")
    books = _read_rdb(RDB)
    if len(books) != len(BOOKS):
        raise QCompileError(f"{RDB} holds {len(books)} texts, expected {len(BOOKS)}")
    lines = books[BOOKS.index(book)]
    paragraphs, cur = [], []
    for line in lines:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paragraphs.append(" ".join(cur))
            cur = []
    if cur:
        paragraphs.append(" ".join(cur))
    return "\n\n".join(re.sub(r"\s+", " ", p) for p in paragraphs)


def text(split: str) -> str:
    """Text for a split: ``eval`` (Emma) or ``calib`` (Persuasion)."""
    if split not in SPLITS:
        raise QCompileError(f"unknown text split '{split}'", hint="use eval or calib")
    return austen(SPLITS[split])


def sentences(split: str, n: int, min_words: int = 6, max_words: int = 40) -> list[str]:
    """The first ``n`` sentences of a split with ``min_words``..``max_words`` words
    (split at ``.``, ``!`` or ``?`` followed by a space; chapter headings skipped)."""
    out = []
    for para in text(split).split("\n\n"):
        for s in re.split(r"(?<=[.!?])\s+", para):
            words = s.split()
            if min_words <= len(words) <= max_words and not s.isupper():
                out.append(s)
                if len(out) == n:
                    return out
    raise QCompileError(f"the {split} text has only {len(out)} sentences of {min_words}-{max_words} words")
