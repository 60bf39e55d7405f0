"""Split SQL script files into statements, the way ``psql -f`` does.

This is a lexer, not a parser: it only needs to know where a statement ends. It follows
psql's own rules (``psqlscan.l``):

- ``--`` line comments and ``/* ... */`` block comments, which nest;
- ``'...'`` strings with ``''`` escapes (standard-conforming: a backslash is an ordinary
  character), ``E'...'`` strings with backslash escapes, ``U&'...'``, ``B'...'``, ``X'...'``;
- ``"..."`` identifiers with ``""`` escapes;
- dollar-quoted bodies ``$$ ... $$`` and ``$tag$ ... $tag$`` (``DO $$ ... $$``,
  ``CREATE FUNCTION ... AS $fn$ ... $fn$``); ``$1`` is a parameter, and ``a$b`` an identifier;
- a semicolon inside parentheses does not end a statement;
- ``CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END`` bodies, tracked with
  psql's BEGIN/CASE/END counting;
- psql meta-commands: a backslash outside quotes starts a meta-command that runs to the end of
  the line (``\\restrict``, ``\\connect``, ``\\set``...); they are dropped from the SQL and
  listed separately; ``\\g`` and its variants end the current statement;
- ``COPY ... FROM stdin`` is followed by data lines up to ``\\.``, which are skipped.

Positions are 1-based lines and columns of the statement's first character (leading comments
and whitespace excluded).

sqlglot's tokenizer also gives positions and understands dollar quotes, but it fails on a whole
file at the first token it cannot read (a quote inside a psql meta-command line, an
unterminated string) and does not implement psql's statement-ending rules above, so statement
boundaries are found here and each statement is then handed to sqlglot on its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MetaCommand",
    "SplitResult",
    "Statement",
    "one_line",
    "split_file",
    "split_sql",
]

QUOTE_WIDTH = 80

_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789$")
_GO_COMMANDS = frozenset({"g", "gx", "gset", "gexec", "gdesc", "crosstabview"})


def one_line(text: str, width: int = QUOTE_WIDTH) -> str:
    """Collapse whitespace to single spaces and cut to ``width`` characters (with ``…``)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: width - 1].rstrip() + "…"


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class MetaCommand:
    """A psql meta-command line (``\\connect db``), dropped from the SQL."""

    file: str
    line: int
    text: str

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class SplitResult:
    """The statements and meta-commands of one file, in file order."""

    file: str
    statements: tuple[Statement, ...] = ()
    meta_commands: tuple[MetaCommand, ...] = ()


@dataclass
class _Pending:
    """The statement being collected."""

    start: int = -1
    words: list[str] = field(default_factory=list)
    paren_depth: int = 0
    begin_depth: int = 0
    blanks: list[tuple[int, int]] = field(default_factory=list)
    """Character ranges (absolute, end exclusive) of comments and meta-commands to blank."""

    def note_word(self, word: str) -> None:
        lowered = word.lower()
        self.words.append(lowered)
        if self.paren_depth or not self._is_routine():
            return
        if lowered == "begin":
            self.begin_depth += 1
        elif lowered == "case":
            if self.begin_depth >= 1:
                self.begin_depth += 1
        elif lowered == "end" and self.begin_depth > 0:
            self.begin_depth -= 1

    def _is_routine(self) -> bool:
        # psql: the statement starts with CREATE [OR REPLACE] FUNCTION|PROCEDURE
        w = self.words
        if len(w) >= 2 and w[0] == "create" and w[1] in ("function", "procedure"):
            return True
        return (
            len(w) >= 4
            and w[0] == "create"
            and w[1] == "or"
            and w[2] == "replace"
            and w[3] in ("function", "procedure")
        )

    def is_copy_from_stdin(self) -> bool:
        w = self.words
        if not w or w[0] != "copy":
            return False
        return any(a == "from" and b in ("stdin", "pstdin") for a, b in itertools.pairwise(w))


class _Scanner:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.n = len(text)
        self.pos = 0
        self.statements: list[Statement] = []
        self.metas: list[MetaCommand] = []
        self.pending = _Pending()
        # line_starts[i] = offset of the first character of line i + 1
        self.line_starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self.line_starts.append(i + 1)

    # -- positions ---------------------------------------------------------------------------

    def line_col(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.line_starts[lo] + 1

    def at_line_start(self, offset: int) -> bool:
        i = offset - 1
        while i >= 0 and self.text[i] in " \t":
            i -= 1
        return i < 0 or self.text[i] == "\n"

    # -- statements --------------------------------------------------------------------------

    def mark_start(self) -> None:
        if self.pending.start < 0:
            self.pending.start = self.pos

    def finish(self, end: int, problem: str | None = None) -> None:
        """End the pending statement at ``end`` (exclusive; the semicolon is not included)."""
        p = self.pending
        if p.start >= 0:
            raw = self.text[p.start : end]
            chars = list(raw)
            for b_start, b_end in p.blanks:
                for i in range(max(b_start, p.start), min(b_end, end)):
                    if chars[i - p.start] != "\n":
                        chars[i - p.start] = " "
            sql = "".join(chars).rstrip()
            text = raw.rstrip()
            if sql.strip() or problem is not None:
                line, col = self.line_col(p.start)
                end_line, _ = self.line_col(p.start + max(len(text) - 1, 0))
                self.statements.append(
                    Statement(
                        file=self.file,
                        line=line,
                        column=col,
                        end_line=end_line,
                        text=text,
                        sql=sql,
                        index=len(self.statements),
                        problem=problem,
                    )
                )
        copy_data = p.is_copy_from_stdin() and problem is None
        self.pending = _Pending()
        if copy_data:
            self.skip_copy_data()

    def skip_copy_data(self) -> None:
        # data starts on the line after the COPY statement and ends with a line "\."
        nl = self.text.find("\n", self.pos)
        if nl < 0:
            self.pos = self.n
            return
        self.pos = nl + 1
        while self.pos < self.n:
            nl = self.text.find("\n", self.pos)
            line_end = self.n if nl < 0 else nl
            line = self.text[self.pos : line_end].rstrip("\r")
            self.pos = line_end + 1 if nl >= 0 else self.n
            if line == "\\.":
                return

    # -- the scan ----------------------------------------------------------------------------

    def run(self) -> SplitResult:
        text, n = self.text, self.n
        while self.pos < n:
            ch = text[self.pos]
            nxt = text[self.pos + 1] if self.pos + 1 < n else ""
            if ch in " \t\r\n\f\v":
                self.pos += 1
            elif ch == "-" and nxt == "-":
                end = text.find("\n", self.pos)
                end = n if end < 0 else end
                self.pending.blanks.append((self.pos, end))
                self.pos = end
            elif ch == "/" and nxt == "*":
                start = self.pos
                if not self.skip_block_comment():
                    self.pending.blanks.append((start, n))
                    self.finish_broken(start, "unterminated /* comment")
                    break
                self.pending.blanks.append((start, self.pos))
            elif ch == "\\":
                self.meta_command()
            elif ch == ";":
                if self.pending.paren_depth > 0 or self.pending.begin_depth > 0:
                    self.mark_start()
                    self.pos += 1
                else:
                    end = self.pos
                    self.pos += 1
                    self.finish(end)
            else:
                self.mark_start()
                if not self.token():
                    break
        else:
            self.finish(n)
        return SplitResult(self.file, tuple(self.statements), tuple(self.metas))

    def finish_broken(self, start: int, what: str) -> None:
        line, col = self.line_col(start)
        if self.pending.start < 0:
            self.pending.start = start
        self.finish(self.n, problem=f"{what} starting at line {line}, column {col}")
        self.pos = self.n

    def skip_block_comment(self) -> bool:
        text, n = self.text, self.n
        depth = 0
        while self.pos < n:
            if text.startswith("/*", self.pos):
                depth += 1
                self.pos += 2
            elif text.startswith("*/", self.pos):
                depth -= 1
                self.pos += 2
                if depth == 0:
                    return True
            else:
                self.pos += 1
        return False

    def meta_command(self) -> None:
        start = self.pos
        end = self.text.find("\n", start)
        end = self.n if end < 0 else end
        command = self.text[start:end].rstrip()
        line, _ = self.line_col(start)
        self.metas.append(MetaCommand(self.file, line, command))
        self.pending.blanks.append((start, end))
        self.pos = end
        name = command[1:].split(None, 1)[0] if len(command) > 1 else ""
        if name in _GO_COMMANDS:
            self.finish(start)

    def token(self) -> bool:
        """Consume one token at ``pos``; False when an unterminated literal ends the file."""
        text, n = self.text, self.n
        ch = text[self.pos]
        start = self.pos
        if ch == "'":
            return self.quoted(start, start + 1, "'", backslash=False, what="string")
        if ch == '"':
            return self.quoted(start, start + 1, '"', backslash=False, what="quoted identifier")
        if ch == "$":
            return self.dollar(start)
        if ch in _IDENT_START or ord(ch) > 127:
            prefix_end = self.pos + 1
            if ch in "eE" and prefix_end < n and text[prefix_end] == "'":
                return self.quoted(start, prefix_end + 1, "'", backslash=True, what="string")
            if ch in "bBxXnN" and prefix_end < n and text[prefix_end] == "'":
                return self.quoted(start, prefix_end + 1, "'", backslash=False, what="string")
            if ch in "uU" and text.startswith("&'", prefix_end):
                return self.quoted(start, prefix_end + 2, "'", backslash=False, what="string")
            if ch in "uU" and text.startswith('&"', prefix_end):
                return self.quoted(
                    start, prefix_end + 2, '"', backslash=False, what="quoted identifier"
                )
            end = self.pos
            while end < n and (text[end] in _IDENT_CHARS or ord(text[end]) > 127):
                end += 1
            self.pending.note_word(text[self.pos : end])
            self.pos = end
            return True
        if ch == "(":
            self.pending.paren_depth += 1
        elif ch == ")" and self.pending.paren_depth > 0:
            self.pending.paren_depth -= 1
        elif ch.isdigit():
            end = self.pos
            while end < n and (text[end].isalnum() or text[end] in "._"):
                end += 1
            self.pos = end
            return True
        self.pos += 1
        return True

    def quoted(self, start: int, body: int, quote: str, *, backslash: bool, what: str) -> bool:
        text, n = self.text, self.n
        i = body
        while i < n:
            c = text[i]
            if backslash and c == "\\":
                i += 2
                continue
            if c == quote:
                if i + 1 < n and text[i + 1] == quote:
                    i += 2
                    continue
                self.pos = i + 1
                return True
            i += 1
        self.finish_broken(start, f"unterminated {what}")
        return False

    def dollar(self, start: int) -> bool:
        text, n = self.text, self.n
        # a "$" right after an identifier character belongs to that identifier (psql)
        if start > 0 and (text[start - 1] in _IDENT_CHARS or ord(text[start - 1]) > 127):
            self.pos += 1
            return True
        i = start + 1
        if i < n and (text[i] in _IDENT_START or ord(text[i]) > 127):
            while i < n and (text[i] in _IDENT_CHARS or ord(text[i]) > 127) and text[i] != "$":
                i += 1
        if i >= n or text[i] != "$":
            # "$1" (a parameter) or a lone "$"
            self.pos = start + 1
            return True
        delimiter = text[start : i + 1]
        close = text.find(delimiter, i + 1)
        if close < 0:
            self.finish_broken(start, f"unterminated dollar-quoted string {delimiter}")
            return False
        self.pos = close + len(delimiter)
        return True


def split_sql(text: str, *, file: str = "<string>") -> SplitResult:
    """Split the SQL ``text`` of one file into statements and psql meta-commands."""
    if text.startswith("\ufeff"):
        text = " " + text[1:]
    return _Scanner(text, file).run()


def split_file(path: Path, *, root: Path) -> SplitResult:
    """Split one file; its name in positions is ``path`` relative to ``root`` (if inside it)."""
    try:
        name = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        name = path.as_posix()
    return split_sql(path.read_text(encoding="utf-8"), file=name)
