"""Split SQL script text into statements the way ``psql -f`` does, on sqlglot's tokenizer.

One splitter for every SQL file the plugin reads (legacy DDL scripts, the ``pg_dump``
baseline). The lexical work is sqlglot's PostgreSQL tokenizer: strings (``'...'``, ``E'...'``,
``U&'...'``, ``B'...'``, ``X'...'``), quoted identifiers, dollar-quoted bodies (``$$ ... $$``,
``$fn$ ... $fn$``), ``--`` and nested ``/* ... */`` comments. On its tokens this module applies
psql's statement rules (``psqlscan.l``):

- a top-level ``;`` ends a statement; one inside parentheses does not;
- ``CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END`` bodies are tracked with
  psql's BEGIN/CASE/END counting;
- a backslash outside quotes starts a psql meta-command that runs to the end of the line
  (``\\restrict``, ``\\connect``, ``\\set``...); meta-commands are dropped from the SQL and
  listed separately; ``\\g`` and its variants end the current statement;
- ``COPY ... FROM stdin`` is followed by data lines up to ``\\.``, which are skipped.

Streaming: text is fed line by line. A line holding a ``;`` (or a meta-command) is a
candidate boundary; the statement text gathered so far is then tokenized and every complete
statement is given out. Text that is still open (an unterminated string or body) is kept and
tokenized again once it has doubled, so the work stays linear and memory stays proportional to
the largest statement, not to the file. :func:`iter_file` reads a file this way, in chunks,
and reports bytes that are not UTF-8 (decoding them with replacement characters) instead of
failing.

Positions are 1-based lines and columns of the statement's first character (leading comments
and whitespace excluded).

API: :func:`split_sql` (text to a :class:`SplitResult`), :func:`split_file`, and the streaming
:func:`iter_sql` / :func:`iter_file`, which yield :class:`Statement`, :class:`MetaCommand` and
:class:`DecodeProblem` items in file order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot.dialects.postgres import Postgres

try:
    from sqlglot.tokenizer_core import TokenType
except ImportError:  # sqlglot before 30 keeps it in sqlglot.tokens
    from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

__all__ = [
    "DecodeProblem",
    "Item",
    "MetaCommand",
    "SplitResult",
    "Splitter",
    "Statement",
    "iter_file",
    "iter_sql",
    "one_line",
    "relative_name",
    "split_file",
    "split_sql",
]

QUOTE_WIDTH = 80

_GO_COMMANDS = frozenset({"g", "gx", "gset", "gexec", "gdesc", "crosstabview"})
_L_PAREN = TokenType.L_PAREN
_R_PAREN = TokenType.R_PAREN
# tokens whose text is not a word of the statement (a quoted "begin" is not BEGIN)
_LITERALS = frozenset(
    getattr(TokenType, name)
    for name in (
        "STRING",
        "BYTE_STRING",
        "BIT_STRING",
        "HEX_STRING",
        "NATIONAL_STRING",
        "HEREDOC_STRING",
        "RAW_STRING",
        "UNICODE_STRING",
        "IDENTIFIER",
        "NUMBER",
    )
    if hasattr(TokenType, name)
)


def one_line(text: str, width: int = QUOTE_WIDTH) -> str:
    """Collapse whitespace to single spaces and cut to ``width`` characters (with ``…``)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: width - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement of a script file."""

    file: str
    """Path of the file, relative to the analysis root, with forward slashes."""
    line: int
    """1-based line of the statement's first character."""
    column: int
    """1-based column of the statement's first character."""
    end_line: int
    """1-based line of the statement's last character."""
    text: str
    """The statement as written, without the terminating semicolon."""
    sql: str
    """``text`` with comments blanked out (newlines kept, so positions still match)."""
    index: int
    """0-based position of the statement in its file."""
    problem: str | None = None
    """Set when the statement is lexically broken (an unterminated string, comment or
    dollar-quoted body runs to the end of the file)."""
    tokens: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)
    """sqlglot's tokens of :attr:`sql` (offsets, lines and columns within it, comments
    dropped), so that parsing need not tokenize again; ``None`` when not available."""

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def quote(self) -> str:
        """The statement on one line, cut to about 80 characters."""
        return one_line(self.sql) or one_line(self.text)

    def position(self, offset: int) -> tuple[int, int]:
        """File line and column of the character at ``offset`` in :attr:`sql`."""
        before = self.sql[: max(0, offset)]
        newlines = before.count("\n")
        if newlines == 0:
            return self.line, self.column + len(before)
        return self.line + newlines, len(before) - before.rfind("\n")

    def slim(self) -> Statement:
        """A copy that keeps only what a report shows (location and :attr:`quote`), for
        holding on to many statements; :meth:`position` no longer applies to it."""
        quote = self.quote
        return Statement(
            self.file, self.line, self.column, self.end_line, quote, quote, self.index, self.problem
        )


@dataclass(frozen=True, slots=True)
class MetaCommand:
    """A psql meta-command line (``\\connect db``), dropped from the SQL."""

    file: str
    line: int
    text: str

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class DecodeProblem:
    """The first line of a file that is not valid UTF-8 (read with replacement characters)."""

    file: str
    line: int
    column: int
    detail: str
    """``byte 0xff is not UTF-8``."""

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


Item = Statement | MetaCommand | DecodeProblem


@dataclass(frozen=True)
class SplitResult:
    """The statements and meta-commands of one file, in file order."""

    file: str
    statements: tuple[Statement, ...] = ()
    meta_commands: tuple[MetaCommand, ...] = ()
    decode_problems: tuple[DecodeProblem, ...] = ()


def _blank(gap: str) -> str:
    """Spaces for every character of ``gap`` but its newlines."""
    if not gap:
        return gap
    return "\n".join(" " * len(part) for part in gap.split("\n"))


def _rebased(tokens: list[Any], text: str, start: int) -> tuple[Any, ...] | None:
    """``tokens`` of ``text`` moved to offsets, lines and columns within the statement that
    starts at ``start`` (in place: they are this splitter's own), without comments."""
    first_line = text.count("\n", 0, start) + 1
    shift = start - (text.rfind("\n", 0, start) + 1)
    try:
        for token in tokens:
            if token.line == first_line:
                token.col -= shift
            token.line -= first_line - 1
            token.start -= start
            token.end -= start
            if token.comments:
                token.comments = []
    except (AttributeError, TypeError):  # a sqlglot whose tokens are read-only
        return None
    return tuple(tokens)


class _Positions:
    """Line and column of offsets in a text that starts at (line, column) of its file."""

    def __init__(self, text: str, line: int, column: int) -> None:
        self.text = text
        self.line0 = line
        self.column0 = column
        self._offset = 0
        self._line = line
        self._line_start = 0  # offset of the first character of self._line

    def at(self, offset: int) -> tuple[int, int]:
        if offset < self._offset:
            self._offset, self._line, self._line_start = 0, self.line0, 0
        text = self.text
        newlines = text.count("\n", self._offset, offset)
        if newlines:
            self._line += newlines
            self._line_start = text.rfind("\n", self._offset, offset) + 1
        self._offset = offset
        if self._line == self.line0:
            return self._line, self.column0 + offset
        return self._line, offset - self._line_start + 1


@dataclass
class _Pending:
    """The statement being collected from the tokens of one attempt."""

    start: int = -1
    tokens: list[Any] | None = None
    paren_depth: int = 0
    begin_depth: int = 0
    words: tuple[str, ...] = ()
    previous_word: str = ""
    from_stdin: bool = False
    kind: str = ""
    """``routine`` or ``copy`` once the first words say so (the only statements whose later
    words matter), ``other`` when they say neither; empty until then."""

    def note(self, token: Any) -> None:
        if self.tokens is None:
            self.tokens = []
            self.start = token.start
        self.tokens.append(token)
        kind = token.token_type
        if kind == _L_PAREN:
            self.paren_depth += 1
            return
        if kind == _R_PAREN:
            if self.paren_depth:
                self.paren_depth -= 1
            return
        if self.kind == "other":
            return
        if kind in _LITERALS:
            self.previous_word = ""
            return
        word = str(token.text).lower()
        if len(self.words) < 4:
            self.words = (*self.words, word)
            self.kind = self._kind()
        if self.previous_word == "from" and word in ("stdin", "pstdin"):
            self.from_stdin = True
        self.previous_word = word
        if self.paren_depth or self.kind != "routine":
            return
        if word == "begin":
            self.begin_depth += 1
        elif word == "case":
            if self.begin_depth >= 1:
                self.begin_depth += 1
        elif word == "end" and self.begin_depth > 0:
            self.begin_depth -= 1

    def _kind(self) -> str:
        # psql: a routine starts with CREATE [OR REPLACE] FUNCTION|PROCEDURE
        w = self.words
        routines = ("function", "procedure")
        if w[0] == "copy":
            return "copy"
        if w[0] != "create":
            return "other"
        if len(w) >= 2 and w[1] in routines:
            return "routine"
        if (len(w) >= 2 and w[1] != "or") or (len(w) >= 3 and w[2] != "replace"):
            return "other"
        if len(w) >= 4:
            return "routine" if w[3] in routines else "other"
        return ""

    @property
    def open(self) -> bool:
        return self.paren_depth > 0 or self.begin_depth > 0

    @property
    def copy_from_stdin(self) -> bool:
        return self.kind == "copy" and self.from_stdin


def _open_literal(text: str, offset: int) -> tuple[int, str]:
    """Where the unterminated literal that stopped the tokenizer starts, and what it is."""
    start = offset
    while start < len(text) and text[start].isspace():
        start += 1
    rest = text[start : start + 3]
    if rest.startswith("/*"):
        return start, "unterminated /* comment"
    if rest.startswith('"') or rest[:3].lower() == 'u&"':
        return start, "unterminated quoted identifier"
    if rest.startswith("$"):
        close = text.find("$", start + 1)
        tag = text[start : close + 1] if close > 0 else "$"
        return start, f"unterminated dollar-quoted string {tag}"
    return start, "unterminated string"


class Splitter:
    """Statements of one file, from its lines fed in order (see the module docstring)."""

    def __init__(self, file: str = "<string>") -> None:
        self.file = file
        self._parts: list[str] = []
        self._size = 0
        self._line = 1
        """File line and column of the first character of the buffer."""
        self._column = 1
        self._next_line = 1
        """File line of the next line fed (when the buffer is empty)."""
        self._index = 0
        self._threshold = 0
        self._blank = True
        self._copy_data = False
        self._queue: deque[str] = deque()

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, line: str) -> list[Item]:
        """Take one line (with its newline) and return what it completes."""
        out: list[Item] = []
        self._queue.append(line)
        while self._queue:
            self._take(self._queue.popleft(), out)
        return out

    def finish(self) -> list[Item]:
        """The end of the file: the last statement, or a broken one."""
        out: list[Item] = []
        if self._parts:
            self._attempt(out, final=True)
        return out

    def _take(self, line: str, out: list[Item]) -> None:
        if self._copy_data:
            self._next_line += 1
            if line.rstrip("\r\n") == "\\.":
                self._copy_data = False
            return
        # a meta-command, unless the line is inside a string or body that is still open
        if line.lstrip(" \t").startswith("\\") and (
            self._blank or self._attempt(out, final=False, probe=True)
        ):
            self._meta_line(line, out)
            return
        self._append(line)
        if ";" in line and self._size >= self._threshold:
            self._attempt(out, final=False)

    def _append(self, line: str) -> None:
        if not self._parts:
            self._line, self._column = self._next_line, 1
        self._parts.append(line)
        self._size += len(line)
        self._next_line += line.count("\n")
        if self._blank and line.strip():
            self._blank = False

    def _reset(self, line: int, column: int = 1, rest: str = "") -> None:
        self._parts = [rest] if rest else []
        self._size = len(rest)
        self._line, self._column = line, column
        self._blank = not rest.strip()
        self._threshold = 0 if self._blank else 2 * len(rest)

    def _meta_line(self, line: str, out: list[Item]) -> None:
        if self._copy_data:  # the probe found a COPY ... FROM stdin: the line is data for now
            self._queue.append(line)
            return
        command = line.strip()
        out.append(MetaCommand(self.file, self._next_line, command))
        name = command[1:].split(None, 1)[0] if len(command) > 1 else ""
        if self._blank:
            self._next_line += 1
            self._reset(self._next_line)
        elif name in _GO_COMMANDS:
            # \g ends the statement gathered so far
            self._attempt(out, final=True)
            self._next_line += 1
            self._reset(self._next_line)
        else:
            self._append("\n")  # keeps the line count; the command is not part of the SQL

    # -- one attempt at cutting statements -------------------------------------------------------

    def _attempt(self, out: list[Item], *, final: bool, probe: bool = False) -> bool:
        """Tokenize the buffer and give out its complete statements.

        Returns False when the buffer ends inside an unterminated literal (with ``probe``,
        nothing is done then: the caller learns that its line is text, not a meta-command).
        """
        text = "".join(self._parts)
        tokenizer = Postgres.Tokenizer()
        error = False
        try:
            tokens = tokenizer.tokenize(text)
        except Exception:  # sqlglot's TokenError (an unterminated literal), or its cause
            tokens = list(getattr(tokenizer, "tokens", None) or [])
            error = True
        if probe and error:
            return False
        positions = _Positions(text, self._line, self._column)
        found: list[tuple[int, Item]] = []
        pending = _Pending()
        cut = 0
        skip_until = -1
        copy_data = False
        for token in tokens:
            if token.start < skip_until:
                continue
            kind = token.token_type
            if kind == TokenType.BACKSLASH:
                eol = text.find("\n", token.start)
                eol = len(text) if eol < 0 else eol
                command = text[token.start : eol].rstrip()
                line, _ = positions.at(token.start)
                found.append((token.start, MetaCommand(self.file, line, command)))
                skip_until = eol
                name = command[1:].split(None, 1)[0] if len(command) > 1 else ""
                if name in _GO_COMMANDS:
                    self._emit(text, pending, token.start, positions, found)
                    pending = _Pending()
                    cut = eol
                continue
            if kind == TokenType.SEMICOLON and not pending.open:
                copy_data = pending.copy_from_stdin
                self._emit(text, pending, token.start, positions, found)
                pending = _Pending()
                cut = token.end + 1
                if copy_data:
                    # the data starts on the next line; the rest of this one is ignored
                    eol = text.find("\n", cut)
                    cut = len(text) if eol < 0 else eol + 1
                    break
                continue
            pending.note(token)
        if copy_data:
            out.extend(item for offset, item in found if offset < cut)
            rest = text[cut:]
            self._copy_data = True
            self._next_line -= rest.count("\n")
            self._reset(self._next_line)
            self._queue.extendleft(reversed(rest.splitlines(keepends=True)))
            return True
        if not final:
            out.extend(item for offset, item in found if offset < cut)
            line, column = positions.at(cut)
            self._reset(line, column, text[cut:])
            return not error
        out.extend(item for _, item in found)
        last: list[tuple[int, Item]] = []
        if error:
            start, what = _open_literal(text, tokens[-1].end + 1 if tokens else cut)
            if pending.tokens is None:
                pending = _Pending(start=start, tokens=[])
            line, column = positions.at(start)
            problem = f"{what} starting at line {line}, column {column}"
            self._emit(text, pending, len(text), positions, last, problem=problem)
        else:
            self._emit(text, pending, len(text), positions, last)
        out.extend(item for _, item in last)
        self._parts, self._size, self._blank, self._threshold = [], 0, True, 0
        return not error

    def _emit(
        self,
        text: str,
        pending: _Pending,
        end: int,
        positions: _Positions,
        found: list[tuple[int, Item]],
        problem: str | None = None,
    ) -> None:
        if pending.tokens is None:
            return
        start = pending.start
        raw = text[start:end]
        statement_text = raw.rstrip()
        if problem is None and "--" not in raw and "/*" not in raw and "\\" not in raw:
            sql = statement_text  # nothing to blank between the tokens
        elif problem is None:
            pieces = []
            cursor = start
            for token in pending.tokens:
                pieces.append(_blank(text[cursor : token.start]))
                pieces.append(text[token.start : token.end + 1])
                cursor = token.end + 1
            pieces.append(_blank(text[cursor:end]))
            sql = "".join(pieces).rstrip()
        else:
            sql = statement_text
        tokens = None if problem is not None else _rebased(pending.tokens, text, start)
        line, column = positions.at(start)
        end_line, _ = positions.at(start + max(len(statement_text) - 1, 0))
        found.append(
            (
                start,
                Statement(
                    file=self.file,
                    line=line,
                    column=column,
                    end_line=end_line,
                    text=statement_text,
                    sql=sql,
                    index=self._index,
                    problem=problem,
                    tokens=tokens,
                ),
            )
        )
        self._index += 1


def iter_sql(lines: Iterable[str], *, file: str = "<string>") -> Iterator[Item]:
    """Statements and meta-commands of the text given as ``lines`` (each with its newline)."""
    splitter = Splitter(file)
    first = True
    for line in lines:
        if first:
            first = False
            if line.startswith("\ufeff"):
                line = " " + line[1:]
        yield from splitter.feed(line)
    yield from splitter.finish()


def _decoded_lines(path: Path, file: str, problems: list[DecodeProblem]) -> Iterator[str]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if not problems:
                    column = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
                    problems.append(
                        DecodeProblem(
                            file, number, column, f"byte 0x{raw[exc.start]:02x} is not UTF-8"
                        )
                    )
                yield raw.decode("utf-8", errors="replace")


def iter_file(path: Path, *, file: str) -> Iterator[Item]:
    """:func:`iter_sql` over a file read in chunks, with ``file`` as its name in positions.

    The first line that is not valid UTF-8 gives a :class:`DecodeProblem` (before the items of
    that line); it and every later such line are decoded with replacement characters.
    """
    problems: list[DecodeProblem] = []
    reported = 0
    for item in iter_sql(_decoded_lines(path, file, problems), file=file):
        if len(problems) > reported:
            yield from problems[reported:]
            reported = len(problems)
        yield item
    yield from problems[reported:]


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (as given when outside ``root``)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _collect(file: str, items: Iterable[Item]) -> SplitResult:
    statements: list[Statement] = []
    metas: list[MetaCommand] = []
    problems: list[DecodeProblem] = []
    for item in items:
        if isinstance(item, Statement):
            statements.append(item)
        elif isinstance(item, MetaCommand):
            metas.append(item)
        else:
            problems.append(item)
    return SplitResult(file, tuple(statements), tuple(metas), tuple(problems))


def split_sql(text: str, *, file: str = "<string>") -> SplitResult:
    """Split the SQL ``text`` of one file into statements and psql meta-commands."""
    return _collect(file, iter_sql(text.splitlines(keepends=True), file=file))


def split_file(path: Path, *, root: Path) -> SplitResult:
    """Split one file; its name in positions is ``path`` relative to ``root`` (if inside it)."""
    name = relative_name(path, root)
    return _collect(name, iter_file(path, file=name))
