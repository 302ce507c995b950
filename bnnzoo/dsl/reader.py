"""Read genotype text into a :class:`~bnnzoo.dsl.types.Genotype`.

Lark parses the text (LALR, built once per process); :class:`_Reader` then walks the tree,
interprets keywords and values, and collects every problem it finds instead of stopping at
the first, so that ``bnnzoo check`` can report them all in one run:

* a syntax error does not end the reading: the line (or the block it opens) is set aside and the
  rest is parsed again, up to :data:`MAX_SYNTAX_ERRORS` times; what depends on a line set aside
  ("missing setting ...") is not reported as missing;
* header errors do not hide the body: when the space, the stem and the body can be read, the
  genotype is returned with the errors, with neutral stand-ins for the header values that could
  not be read, so that validation reports the body's problems too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from bnnzoo import _resources
from bnnzoo._suggest import did_you_mean
from bnnzoo.dsl import spaces
from bnnzoo.dsl.construct import default_reductions
from bnnzoo.dsl.types import (
    FORMAT_VERSION,
    Basic,
    Body,
    Cell,
    CellNetwork,
    Edge,
    Genotype,
    Head,
    Layer,
    LayerList,
    MBConv,
    Node,
    Skip,
    Stem,
)
from bnnzoo.errors import (
    MAX_REPORTED_ERRORS,
    GenotypeError,
    GenotypeSyntaxError,
    GenotypeValidationError,
    MoreErrors,
    Position,
    capped,
)

SETTINGS = ("name", "space", "input", "classes", "stem", "head", "shortcut", "channels", "reductions")
MAX_SYNTAX_ERRORS = 10  # syntax errors reported per text; each one costs another parse
# Header values that could not be read, for validating the rest: a valid name, the largest input
# (so no reduction is reported as one too many) and a usual class count.
_STAND_INS = {"name": "unnamed", "input": (3, spaces.MAX_INPUT_SIZE, spaces.MAX_INPUT_SIZE), "classes": 10}
BLOCKS = ("MB3", "MB5", "MB7", "skip", "basic")
_MB = re.compile(r"MB([0-9]+)$")
_MAX_DIGITS = 1000  # far above every bound, far below what int() refuses
_LONG_NUMBER = re.compile(rf"[0-9]{{{_MAX_DIGITS + 1},}}")

_TERMINAL_NAMES = {
    "_NL": "end of line",
    "WORD": "a word",
    "INT": "a number",
    "SHAPE": "a shape like 3x32x32",
    "STRIDE": "a stride like s2",
    "REPEAT": "a repeat like x2",
    "STRING": 'a quoted string like "text"',
    "$END": "end of file",
}


@functools.cache
def _parser() -> Lark:
    return Lark(_resources.grammar_path().read_text(encoding="utf-8"), parser="lalr", propagate_positions=True)


def read(text: str, path: str = "<string>") -> tuple[Genotype | None, list[GenotypeError]]:
    """Parse ``text``; return the genotype and every problem found (capped, see errors.capped).

    The genotype is None when its space, stem or body cannot be read. When there are problems, a
    returned genotype is only good for validating what could be read (see the module docstring).
    """
    bad = _unencodable(text)
    if bad is not None:
        return None, [_unencodable_error(text, bad, path)]
    tree, syntax_errors = _parse(text, path)
    if tree is None:
        return None, syntax_errors
    reader = _Reader(text, path, recovered=bool(syntax_errors))
    if reader.check_numbers(tree):
        return None, capped([*syntax_errors, *reader.reported()])
    genotype = reader.read(tree)
    return genotype, capped([*syntax_errors, *reader.reported()])


def _parse(text: str, path: str) -> tuple[Tree | None, list[GenotypeError]]:
    """Parse ``text``, setting aside the lines of each syntax error; the tree (None if the text
    cannot be parsed around its errors) and the syntax errors, located in ``text``."""
    errors: list[GenotypeError] = []
    source = text if text.endswith("\n") else text + "\n"
    version_line = next((n for n, line in enumerate(_code_lines(source), 1) if line.strip()), 1)
    while True:
        try:
            return _parser().parse(source), errors
        except UnexpectedInput as exc:
            error = _syntax_error(exc, source, path, text)
            errors.append(error)
            line = error.line or 1
            if (
                line <= version_line
                or (line, error.column) == _end_position(source)
                or len(errors) == MAX_SYNTAX_ERRORS
            ):
                return None, errors  # no version line, a missing end, or enough said
            source = _set_aside(source, line)


def _code_lines(source: str) -> list[str]:
    """The lines of ``source`` without quoted strings and comments (braces there do not count)."""
    return [_COMMENT.sub("", _STRING.sub('""', line)) for line in source.split("\n")]


_STRING = re.compile(r'"(\\.|[^"\\])*"')
_COMMENT = re.compile(r"#.*")


def _set_aside(source: str, line: int) -> str:
    """Blank line ``line``, or the whole block it belongs to or opens (a block with a syntax error
    is not read at all: reading the rest of it would only report errors that follow from it)."""
    code = _code_lines(source)
    first = last = line - 1
    for index in range(line - 2, -1, -1):  # inside a block: back to its opening brace
        if "}" in code[index]:
            break
        if "{" in code[index]:
            first = index
            break
    opens = "{" in code[first] or code[line - 1].split()[:1] in (["layers"], ["cell"])
    if opens and "}" not in code[line - 1]:  # forward to the closing brace
        while last + 1 < len(code) and not code[last].lstrip().startswith("}"):
            last += 1
    lines = source.split("\n")
    lines[first : last + 1] = [""] * (last + 1 - first)
    return "\n".join(lines)


def _syntax_error(exc: UnexpectedInput, text: str, path: str, original: str | None = None) -> GenotypeSyntaxError:
    """The located error for ``exc`` raised while parsing ``text``; the excerpt comes from ``original``
    (the text before lines were set aside), if given."""
    line, column = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        message = f"unexpected character {text[exc.pos_in_stream]!r}"
    elif isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        message = "unexpected end of file"
        line, column = _end_position(text)
    else:
        assert isinstance(exc, UnexpectedToken)
        token = exc.token
        shown = "end of line" if token.type == "_NL" else repr(str(token))
        if token.type == "_NL":
            line, column = _line_end(text, token.line)
        message = f"unexpected {shown}"
        if _only_comments(text[: token.start_pos]):
            message += "; a genotype file starts with 'bnnzoo 1'"
    expected = _expected(exc)
    if expected and "did you mean" not in message and "starts with" not in message:
        message += "; expected " + " or ".join(expected)
    return GenotypeSyntaxError(message, path=path, position=Position(line, column), source=original or text)


def _unencodable(text: str) -> int | None:
    """The index of the first character UTF-8 cannot encode (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _unencodable_error(text: str, index: int, path: str) -> GenotypeSyntaxError:
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    message = f"character U+{ord(text[index]):04X} is a lone surrogate, which UTF-8 cannot encode; remove it"
    return GenotypeSyntaxError(message, path=path, position=Position(line, column))  # no excerpt: unprintable


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("#") for line in text.split("\n"))


def _expected(exc: UnexpectedInput) -> list[str]:
    names = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    terminals = {t.name: t for t in _parser().terminals}
    shown = []
    for name in sorted(names):
        if name in _TERMINAL_NAMES:
            shown.append(_TERMINAL_NAMES[name])
        elif name in terminals and terminals[name].pattern.type == "str":
            shown.append(repr(terminals[name].pattern.value))
    return sorted(set(shown))


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip("\n").split("\n")
    return len(lines), len(lines[-1]) + 1


def _line_end(text: str, line: int) -> tuple[int, int]:
    lines = text.split("\n")
    return line, (len(lines[line - 1]) + 1 if 0 < line <= len(lines) else 1)


def _at(token: Token) -> Position:
    return Position(token.line, token.column)


class _Reader:
    """Turn a parse tree into a Genotype, collecting errors with positions."""

    def __init__(self, text: str, path: str, recovered: bool = False) -> None:
        self.text = text
        self.path = path
        self.recovered = recovered  # lines with syntax errors were set aside
        self.errors: list[GenotypeError] = []
        self.settings: dict[str, tuple[Token, list[Token]]] = {}
        self.meta: dict[str, str] = {}
        self.layer_count: Token | None = None
        self.layers: LayerList | None = None
        self.cells: dict[str, Cell] = {}
        self.first_body: Token | None = None
        self.start: Position | None = None
        self.omitted = 0  # errors past MAX_REPORTED_ERRORS, counted, not kept

    def error(self, message: str, at: Token | Position | None) -> None:
        if len(self.errors) >= MAX_REPORTED_ERRORS:
            self.omitted += 1
            return
        position = _at(at) if isinstance(at, Token) else at
        self.errors.append(GenotypeValidationError(message, path=self.path, position=position, source=self.text))

    def reported(self) -> list[GenotypeError]:
        """The errors found, with a final "and N more" past the cap."""
        return [*self.errors, MoreErrors(self.omitted, self.path)] if self.omitted else self.errors

    def missing(self, message: str, at: Token | Position | None) -> None:
        """An error for something absent, unless it may sit on a line set aside for a syntax error."""
        if not self.recovered:
            self.error(message, at)

    # -- top level ---------------------------------------------------------------------------

    def check_numbers(self, tree: Tree) -> bool:
        """Report numbers too long to be sane (they would also be slow to convert); True if any."""
        found = False
        for token in tree.scan_values(lambda v: isinstance(v, Token) and v.type != "STRING"):
            if _LONG_NUMBER.search(token):
                self.error(f"number too large in '{token[:20]}...'; numbers have at most {_MAX_DIGITS} digits", token)
                found = True
        return found

    def read(self, tree: Tree) -> Genotype | None:
        version_tree, *statements = tree.children
        version = version_tree.children[0]
        self.start = Position(version.line, 1)
        if int(version) != FORMAT_VERSION:
            self.error(f"unsupported format version {version}; this bnnzoo reads version 1", version)
        handlers: dict[str, Callable[[Tree], None]] = {
            "setting": self._setting,
            "meta": self._meta,
            "layer_count": self._layer_count,
            "layers_block": self._layers_block,
            "cell_block": self._cell_block,
        }
        for statement in statements:
            handlers[statement.data](statement)
        return self._assemble()

    def _assemble(self) -> Genotype | None:
        name = self._word("name")
        space = self._choice("space", spaces.SPACES)
        shape = self._shape()
        classes = self._int("classes")
        stem = self._stem()
        head = self._head()
        shortcut = self._choice("shortcut", spaces.SHORTCUT_KINDS, spaces.DEFAULT_SHORTCUT)
        body = self._body(space)
        missing = [key for key in ("name", "space", "input", "classes", "stem") if key not in self.settings]
        for key in missing:
            self.missing(f"missing setting '{key}'{_EXAMPLES[key]}", self.start)
        if None in (space, stem, body):  # anything else missing has been reported: stand-ins serve
            return None
        return Genotype(
            name=_STAND_INS["name"] if name is None else name,
            space=space,
            input_shape=_STAND_INS["input"] if shape is None else shape,
            num_classes=_STAND_INS["classes"] if classes is None else classes,
            stem=stem,
            head=Head() if head is None else head,
            body=body,
            shortcut=spaces.DEFAULT_SHORTCUT if shortcut is None else shortcut,
            meta=tuple(self.meta.items()),
            comments=_leading_comments(self.text),
            path=self.path,
            spans={key: _at(token) for key, (token, _) in self.settings.items()},
        )

    # -- statements --------------------------------------------------------------------------

    def _setting(self, tree: Tree) -> None:
        key, *values = tree.children
        if key not in SETTINGS:
            self.error(f"unknown setting '{key}'{did_you_mean(key, SETTINGS + ('layers', 'meta'))}", key)
        elif key in self.settings:
            previous = self.settings[key][0]
            self.error(f"'{key}' is set twice (first on line {previous.line})", key)
        else:
            self.settings[str(key)] = (key, values)

    def _meta(self, tree: Tree) -> None:
        key, value = tree.children
        if key in self.meta:
            self.error(f"meta '{key}' is set twice", key)
            return
        try:
            text = json.loads(value)
        except json.JSONDecodeError:
            self.error('invalid escape in string; use \\" \\\\ \\n \\t or \\uXXXX', value)
            return
        bad = _unencodable(text)
        if bad is not None:
            self.error(
                f"the string holds U+{ord(text[bad]):04X}, a lone surrogate that UTF-8 cannot encode; "
                "write the character itself, or a \\uXXXX pair for characters past U+FFFF",
                value,
            )
            return
        self.meta[str(key)] = text

    def _layer_count(self, tree: Tree) -> None:
        (count,) = tree.children
        if self.layer_count is not None:
            self.error(f"'layers' is set twice (first on line {self.layer_count.line})", count)
        self.layer_count = count

    def _layers_block(self, tree: Tree) -> None:
        if self.layers is not None:
            self.error("a genotype has one 'layers { ... }' block", _tree_start(tree))
            return
        layers = tuple(layer for child in tree.children if (layer := self._layer(child)) is not None)
        self.layers = LayerList(layers, spans={"block": _tree_start(tree)})
        self.first_body = self.first_body or _tree_start(tree)

    def _cell_block(self, tree: Tree) -> None:
        kind, *lines = tree.children
        if kind not in spaces.CELL_KINDS:
            self.error(f"unknown cell kind '{kind}'{did_you_mean(kind, spaces.CELL_KINDS)}", kind)
            return
        if kind in self.cells:
            self.error(f"cell '{kind}' is defined twice", kind)
            return
        nodes = tuple(self._node(line) for line in lines if line.data == "node")
        concats = [line for line in lines if line.data == "concat"]
        for extra in concats[1:]:
            self.error("a cell has one 'concat' line", extra.children[0])
        default = tuple(node.index for node in nodes)
        concat = tuple(int(index) for index in concats[0].children) if concats else default
        spans = {"kind": _at(kind)}
        if concats:
            spans["concat"] = _at(concats[0].children[0])
        self.cells[str(kind)] = Cell(str(kind), nodes, concat, spans=spans)
        self.first_body = self.first_body or kind

    # -- layers and cells --------------------------------------------------------------------

    def _layer(self, tree: Tree) -> Layer | None:
        word = tree.children[0]
        parts = {_part(child): child for child in tree.children[1:]}
        argument = parts.get("argument")
        argument_token = argument.children[0] if argument is not None else None
        channels = parts.get("INT")
        stride = int(parts["STRIDE"][1:]) if "STRIDE" in parts else 1
        repeat = int(parts["REPEAT"][1:]) if "REPEAT" in parts else 1
        spans = {"block": _at(word)} | {key: _at(_first_token(value)) for key, value in parts.items()}
        spans = {("channels" if k == "INT" else k.lower()): v for k, v in spans.items()}
        match = _MB.match(word)
        if match:
            if argument_token is None or argument_token.type != "INT":
                self.error(f"'{word}' needs an expansion ratio, e.g. {word}(6)", word)
                return None
            if channels is None:
                self.error(f"'{word}({argument_token})' needs its output channels, e.g. {word}(6) 64", word)
                return None
            return MBConv(int(match.group(1)), int(argument_token), int(channels), stride, repeat, spans)
        if word == "skip":
            if argument is not None or channels is not None or "STRIDE" in parts:
                self.error("'skip' is the identity: it takes no expansion, channels or stride", word)
                return None
            return Skip(repeat, spans)
        if word == "basic":
            if argument_token is None or argument_token not in spaces.BASIC_DOWNSAMPLES:
                hint = " or ".join(f"basic({kind})" for kind in spaces.BASIC_DOWNSAMPLES)
                self.error(f"'basic' needs its downsample shortcut kind: {hint}", argument_token or word)
                return None
            if channels is None:
                self.error("'basic' needs its output channels, e.g. basic(binary) 64", word)
                return None
            return Basic(str(argument_token), int(channels), stride, repeat, spans)
        self.error(f"unknown block '{word}'{did_you_mean(word, BLOCKS)}", word)
        return None

    def _node(self, tree: Tree) -> Node:
        index, *edges = tree.children
        return Node(
            int(index),
            tuple(
                Edge(str(op), int(source), spans={"op": _at(op), "input": _at(source)})
                for op, source in (edge.children for edge in edges)
            ),
            spans={"index": _at(index)},
        )

    def _body(self, space: str | None) -> Body | None:
        if self.layers is not None and (self.cells or self.layer_count is not None):
            self.error("a genotype has either a 'layers { ... }' block or cells, not both", self.first_body)
            return None
        if space == "bnas":
            return self._cell_network()
        if space in spaces.LAYER_LIST_SPACES:
            if self.cells:
                self.error(f"cells belong to the bnas space, not '{space}'", self.first_body)
                return None
            if self.layers is None:
                self.missing(f"the {space} space needs a 'layers {{ ... }}' block", self.start)
                return None
            return self.layers
        return None

    def _cell_network(self) -> CellNetwork | None:
        if self.layers is not None:
            self.error("the bnas space has cells, not a 'layers { ... }' block", self.first_body)
            return None
        for kind in spaces.CELL_KINDS:
            if kind not in self.cells:
                self.missing(f"missing 'cell {kind} {{ ... }}'", self.start)
        if self.layer_count is None:
            self.missing("missing setting 'layers', the number of cells, e.g. 'layers 20'", self.start)
        channels = self._int("channels")
        if "channels" not in self.settings:
            self.missing("missing setting 'channels', the initial channels, e.g. 'channels 36'", self.start)
        if self.layer_count is None or channels is None or any(kind not in self.cells for kind in spaces.CELL_KINDS):
            return None
        layers = int(self.layer_count)
        reductions = self._ints("reductions")
        if reductions is None:
            reductions = default_reductions(layers)
        spans = {"layers": _at(self.layer_count)}
        spans["reductions"] = _at(self.settings["reductions"][0]) if "reductions" in self.settings else spans["layers"]
        spans["channels"] = _at(self.settings["channels"][0])
        return CellNetwork(layers, channels, reductions, self.cells["normal"], self.cells["reduction"], spans)

    # -- typed setting values ----------------------------------------------------------------

    def _values(self, key: str, types: tuple[str, ...], example: str) -> list[Token] | None:
        if key not in self.settings:
            return None
        token, values = self.settings[key]
        if len(values) != len(types) or any(v.type != t for v, t in zip(values, types)):
            self.error(f"'{key}' expects {example}", values[0] if values else token)
            return None
        return values

    def _word(self, key: str) -> str | None:
        values = self._values(key, ("WORD",), f"one word, e.g. '{key} mbconv_a'")
        return str(values[0]) if values else None

    def _int(self, key: str) -> int | None:
        values = self._values(key, ("INT",), f"one number, e.g. '{key} 10'")
        return int(values[0]) if values else None

    def _ints(self, key: str) -> tuple[int, ...] | None:
        if key not in self.settings:
            return None
        token, values = self.settings[key]
        if any(value.type != "INT" for value in values):
            self.error(f"'{key}' expects cell indices, e.g. '{key} 6 13'", token)
            return None
        return tuple(int(value) for value in values)

    def _choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        values = self._values(key, ("WORD",), "one of: " + ", ".join(choices))
        if values is None:
            return default if key not in self.settings else None
        if values[0] not in choices:
            self.error(f"unknown {key} '{values[0]}'{did_you_mean(values[0], choices)}", values[0])
            return None
        return str(values[0])

    def _shape(self) -> tuple[int, int, int] | None:
        values = self._values("input", ("SHAPE",), "channels x height x width, e.g. 'input 3x32x32'")
        if not values:
            return None
        channels, height, width = (int(part) for part in values[0].split("x"))
        return channels, height, width

    def _stem(self) -> Stem | None:
        if "stem" not in self.settings:
            return None
        token, values = self.settings["stem"]
        kinds = [v for v in values if v.type == "WORD" and not re.fullmatch(r"s[0-9]+", v)]
        numbers = [v for v in values if v.type == "INT"]
        strides = [v for v in values if v.type == "WORD" and re.fullmatch(r"s[0-9]+", v)]
        if len(kinds) != 1 or len(numbers) != 1 or len(strides) > 1 or len(values) > 3:
            self.error("'stem' expects a kind, channels and an optional stride, e.g. 'stem conv3x3 48'", token)
            return None
        kind = kinds[0]
        if kind not in spaces.STEM_KINDS:  # the channels and stride still serve to validate the body
            self.error(f"unknown stem '{kind}'{did_you_mean(kind, spaces.STEM_KINDS)}", kind)
            kind = Token("WORD", spaces.STEM_KINDS[0], line=kind.line, column=kind.column)
        stride = int(strides[0][1:]) if strides else 1
        spans = {"kind": _at(kind), "channels": _at(numbers[0])}
        if strides:
            spans["stride"] = _at(strides[0])
        return Stem(int(kind[-1]), int(numbers[0]), stride, spans)

    def _head(self) -> Head | None:
        if "head" not in self.settings:
            return Head()
        token, values = self.settings["head"]
        if len(values) != 2 or any(v.type != "WORD" for v in values):
            self.error("'head' expects a pooling and a classifier, e.g. 'head avgpool fc'", token)
            return None
        pool, classifier = values
        for value, choices in ((pool, spaces.HEAD_POOLS), (classifier, spaces.HEAD_CLASSIFIERS)):
            if value not in choices:
                self.error(f"unknown head part '{value}'{did_you_mean(value, choices)}", value)
                return None
        return Head(str(pool), str(classifier), {"pool": _at(pool), "classifier": _at(classifier)})


_EXAMPLES = {
    "name": ", e.g. 'name my_model'",
    "space": ", one of: " + ", ".join(spaces.SPACES),
    "input": ", e.g. 'input 3x32x32'",
    "classes": ", e.g. 'classes 10'",
    "stem": ", e.g. 'stem conv3x3 48'",
}


def _part(child: Tree | Token) -> str:
    return child.data if isinstance(child, Tree) else child.type


def _first_token(node: Tree | Token) -> Token:
    return node if isinstance(node, Token) else next(node.scan_values(lambda v: isinstance(v, Token)))


def _tree_start(tree: Tree) -> Position | None:
    meta = tree.meta
    return None if meta.empty else Position(meta.line, meta.column)


def _leading_comments(text: str) -> tuple[str, ...]:
    comments = []
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        comments.append(stripped[1:].removeprefix(" ").rstrip())
    return tuple(comments)
