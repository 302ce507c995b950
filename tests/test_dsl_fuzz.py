"""Fuzzing the reader: mutated zoo files parse or fail with a GenotypeError, nothing else.

A seeded generator applies 1 to 3 random edits (characters deleted, inserted or replaced, lines
swapped, duplicated or deleted, tokens, keywords and numbers inserted or substituted) to every
genotype file of the zoo, ~500 mutations in all. Each result must either parse into a Genotype
that round-trips, or raise a :class:`bnnzoo.errors.GenotypeError` whose text renders; any other
exception, or a parse that hangs, is a bug in the reader or validator.
"""

from __future__ import annotations

import random
import re
import signal
from pathlib import Path

from bnnzoo.dsl import Genotype, check, parse, to_text
from bnnzoo.errors import GenotypeError, GenotypeErrors

ZOO = Path(__file__).resolve().parents[1] / "genotypes"
SEED = 20240229
MUTATIONS = 500
TIME_LIMIT_S = 5.0

KEYWORDS = (
    "bnnzoo",
    "name",
    "space",
    "input",
    "classes",
    "stem",
    "head",
    "shortcut",
    "channels",
    "reductions",
    "layers",
    "meta",
    "cell",
    "node",
    "concat",
    "normal",
    "reduction",
    "mbconv",
    "resnet",
    "bnas",
    "MB3(6)",
    "MB9(2)",
    "skip",
    "basic(real)",
    "basic(binary)",
    "conv3x3",
    "avgpool",
    "fc",
    "none(0)",
    "bin_conv_3x3(1)",
    "max_pool_3x3(7)",
    "zero",
    "partial_duplicate",
)
NUMBERS = (
    "0",
    "1",
    "2",
    "3",
    "7",
    "64",
    "4096",
    "4097",
    "100001",
    "99999999999999",
    "9" * 400,  # an int too large for float()
    "9" * 5000,  # over Python's 4300-digit int() limit
)
TOKENS = (
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "#",
    '"',
    '""',
    '"text"',
    '"\\q"',
    '"\\u12"',
    "\\",
    "3x32x32",
    "0x0x0",
    "s2",
    "s0",
    "x2",
    "x0",
    "x65",
    "s9",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "\x00",
    "\u2028",
    "\x85",
    "\ufeff",
    "é",
    "😀",
)
CHARACTERS = 'abcxyzMBs0129 \t\n\r{}()=+#"\\-._x\u2028\x85é'


def _random_token(rng: random.Random) -> str:
    return rng.choice(rng.choice((KEYWORDS, NUMBERS, TOKENS)))


def _mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """Apply one random edit; return the new text and a description of the edit."""
    kind = rng.choice(
        (
            "delete",
            "insert-char",
            "replace-char",
            "swap-lines",
            "duplicate-line",
            "delete-line",
            "insert-token",
            "replace-number",
            "replace-word",
        )
    )
    position = rng.randrange(0, len(text) + 1)
    lines = text.split("\n")
    if kind == "delete":
        length = rng.choice((1, 1, 2, 5, 20))
        return text[:position] + text[position + length :], f"delete {length} at {position}"
    if kind == "insert-char":
        char = rng.choice(CHARACTERS)
        return text[:position] + char + text[position:], f"insert {char!r} at {position}"
    if kind == "replace-char":
        char = rng.choice(CHARACTERS)
        return text[:position] + char + text[position + 1 :], f"replace at {position} with {char!r}"
    if kind in ("swap-lines", "duplicate-line", "delete-line"):
        first, second = rng.randrange(len(lines)), rng.randrange(len(lines))
        if kind == "swap-lines":
            lines[first], lines[second] = lines[second], lines[first]
        elif kind == "duplicate-line":
            lines.insert(second, lines[first])
        else:
            del lines[first]
        return "\n".join(lines), f"{kind} {first} {second}"
    if kind == "insert-token":
        token = _random_token(rng)
        spaced = rng.choice((token, f" {token} ", f"{token} ", f"\n{token}\n"))
        return text[:position] + spaced + text[position:], f"insert {spaced!r} at {position}"
    pattern = r"\b[0-9]+\b" if kind == "replace-number" else r"\b[A-Za-z_][A-Za-z0-9_]*\b"
    matches = list(re.finditer(pattern, text))
    if not matches:
        return text, kind
    match = rng.choice(matches)
    new = rng.choice(NUMBERS) if kind == "replace-number" else rng.choice(KEYWORDS + NUMBERS)
    return text[: match.start()] + new + text[
        match.end() :
    ], f"{kind} {match.group()!r} at {match.start()} -> {new[:20]!r}"


class _Hang(Exception):
    pass


def _expire(signum, frame):
    raise _Hang


def _outcome(text: str) -> str | None:
    """None when ``text`` behaves; otherwise a description of the misbehaviour."""
    try:
        genotype = parse(text, "fuzz.bnn")
    except GenotypeError as error:
        rendered = str(error)  # must render, with or without an excerpt
        if not rendered.startswith("fuzz.bnn"):
            return f"error text does not start with the path: {rendered[:80]!r}"
        errors = error.errors if isinstance(error, GenotypeErrors) else [error]
        if [str(e) for e in errors] != [str(e) for e in check(text, "fuzz.bnn")]:
            return "parse() and check() disagree"
        return None
    except _Hang:
        return f"parse() took longer than {TIME_LIMIT_S} s"
    except Exception as error:  # exactly what the fuzz test looks for
        return f"{type(error).__name__}: {str(error)[:120]}"
    if not isinstance(genotype, Genotype):
        return f"parse() returned {type(genotype).__name__}"
    if check(text, "fuzz.bnn"):
        return "parse() accepted a text that check() rejects"
    try:
        again = parse(to_text(genotype))
    except Exception as error:
        return f"the canonical text of an accepted genotype fails: {type(error).__name__}: {str(error)[:120]}"
    if again != genotype:
        return "the canonical text of an accepted genotype parses to another genotype"
    return None


def test_mutated_zoo_files_raise_only_genotype_errors() -> None:
    rng = random.Random(SEED)
    files = sorted(ZOO.glob("*.bnn"))
    assert files
    per_file = -(-MUTATIONS // len(files))
    failures: list[str] = []
    kinds: dict[str, int] = {}
    previous = signal.signal(signal.SIGALRM, _expire)
    try:
        for path in files:
            original = path.read_text(encoding="utf-8")
            for number in range(per_file):
                text, edits = original, []
                for _ in range(rng.choice((1, 1, 2, 3))):
                    text, edit = _mutate(text, rng)
                    edits.append(edit)
                signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
                try:
                    problem = _outcome(text)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if problem is not None:
                    failures.append(f"{path.name} #{number} [{'; '.join(edits)}]: {problem}")
                    kinds[problem.split(":")[0]] = kinds.get(problem.split(":")[0], 0) + 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not failures, f"{len(failures)} of {per_file * len(files)} mutations misbehaved {kinds}:\n" + "\n".join(
        failures[:25]
    )


def test_the_fuzzer_mutates() -> None:
    """Most mutations change the text, and many of them make it invalid: the test has teeth."""
    rng = random.Random(SEED)
    original = (ZOO / "bnas_a_baseline.bnn").read_text(encoding="utf-8")
    texts = [_mutate(original, rng)[0] for _ in range(200)]
    assert sum(text != original for text in texts) > 150
    assert sum(_rejected(text) for text in texts) > 50


def _rejected(text: str) -> bool:
    try:
        parse(text)
    except Exception:  # any failure counts as a rejection here
        return True
    return False
