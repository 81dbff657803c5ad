"""The --where language: a small filter over runs, compiled to parameterised SQL.

    params.lr > 0.01 and (metrics.val_acc >= 0.9 or tags.team = vision)
    status in (running, queued) and not name like 'debug%'
    created > 2d and duration < 1h

User text never becomes SQL: keys and values are bound as parameters, and the only
identifiers that reach SQL come from the fixed tables below.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from mltui.base.errors import UsageError
from mltui.store.runs import STATUSES

# attribute -> SQL expression over `runs` (fixed text, never user input)
ATTRIBUTES = {
    "id": "runs.id",
    "name": "runs.name",
    "kind": "runs.kind",
    "status": "runs.status",
    "created": "runs.created",
    "started": "runs.started",
    "ended": "runs.ended",
    "duration": "(coalesce(runs.ended, ?) - runs.started)",  # ? is bound to the time of the query
    "host": "runs.host",
    "user": "runs.user",
    "exit_code": "runs.exit_code",
    "note": "runs.note",
    "parent": "runs.parent_id",
    "git_commit": "runs.git_commit",
    "cwd": "runs.cwd",
    "pid": "runs.pid",
    "archived": "runs.archived",  # 1 for a run put away with `runs archive` (hidden unless asked for)
    # alive but silent (no output, no metric) since then, past runs.stall_seconds; NULL when not stalled
    "stalled_since": "runs.stalled_since",
    "stalled": "(runs.stalled_since IS NOT NULL)",  # stalled = true
}
TIME_ATTRIBUTES = {"created", "started", "ended", "stalled_since"}
NAMESPACES = {  # prefix -> (table, value column)
    "params": ("params", "value"),
    "tags": ("tags", "value"),
    "metrics": ("metric_summary", "last"),
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
KEYWORDS = {"and", "or", "not", "in", "like", "is", "null", "true", "false"}
OPS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<date>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(?![\w.:])
  | (?P<duration>\d+(?:\.\d+)?[smhdw])(?![\w.])
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w])
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<field>(?:params|metrics|tags)\.`[^`]+`)
  | (?P<word>[A-Za-z_][\w.:/\-]*|\d\w*[A-Za-z_]\w*)
    """,
    re.VERBOSE,
)


@dataclass
class Token:
    kind: str
    text: str
    pos: int  # 0-based column

    @property
    def lower(self) -> str:
        return self.text.lower()


def _fail(expr: str, pos: int, problem: str, what: str = "--where") -> UsageError:
    near = expr[pos : pos + 12].strip() or "the end"
    return UsageError(f"Bad {what} at column {pos + 1} (near {near!r}): {problem}.")


def tokenize(expr: str, what: str = "--where") -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(expr):
        m = TOKEN_RE.match(expr, pos)
        if not m:
            raise _fail(expr, pos, f"unexpected character {expr[pos]!r}", what)
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(expr)))
    return tokens


@dataclass(frozen=True)
class Field:
    namespace: str | None  # params / metrics / tags, or None for an attribute
    name: str


def parse_field(text: str) -> Field | None:
    head, dot, rest = text.partition(".")
    if dot and head in NAMESPACES:
        if rest.startswith("`") and rest.endswith("`") and len(rest) > 2:
            rest = rest[1:-1]
        return Field(head, rest) if rest else None
    if text in ATTRIBUTES:
        return Field(None, text)
    return None


def _attribute_sql(field: Field, params: list[object], now: float) -> str:
    """The SQL of an attribute; binds the current time where the attribute needs it."""
    sql = ATTRIBUTES[field.name]
    if "?" in sql:
        params.append(now)
    return sql


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class Compiler:
    """Recursive descent over the tokens, producing SQL text and its bound parameters."""

    def __init__(self, expr: str, now: float | None = None) -> None:
        self.expr = expr
        self.tokens = tokenize(expr)
        self.i = 0
        self.params: list[object] = []
        self.now = time.time() if now is None else now
        self.fields: set[Field] = set()  # every field the expression names

    # token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, problem: str, tok: Token | None = None) -> UsageError:
        return _fail(self.expr, (tok or self.tok).pos, problem)

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.lower in words

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            raise self.fail(f"expected '{word}'")
        self.take()

    # grammar
    def compile(self) -> str:
        if self.tok.kind == "end":
            raise self.fail("the expression is empty")
        sql = self.or_expr()
        if self.tok.kind != "end":
            raise self.fail("expected 'and', 'or' or the end of the expression")
        return sql

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while self.is_kw("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.not_expr()]
        while self.is_kw("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_expr(self) -> str:
        if self.is_kw("not"):
            self.take()
            return f"(NOT {self.not_expr()})"
        return self.atom()

    def atom(self) -> str:
        if self.tok.kind == "lparen":
            opening = self.take()
            sql = self.or_expr()
            if self.tok.kind != "rparen":
                raise self.fail(f"expected ')' to close the '(' at column {opening.pos + 1}")
            self.take()
            return sql
        return self.comparison()

    def comparison(self) -> str:
        tok = self.tok
        if tok.kind not in ("word", "field") or tok.lower in KEYWORDS:
            raise self.fail("expected a field such as params.lr, metrics.loss, tags.team or status")
        field = parse_field(tok.text)
        if field is None:
            raise self.fail(
                f"unknown field {tok.text!r}; use params.NAME, metrics.NAME, tags.NAME or one of "
                + ", ".join(ATTRIBUTES)
            )
        self.fields.add(field)
        self.take()
        negate = False
        if self.is_kw("not"):
            self.take()
            negate = True
            if not self.is_kw("in", "like"):
                raise self.fail("expected 'in' or 'like' after 'not'")
        if self.is_kw("is"):
            self.take()
            present = False
            if self.is_kw("not"):
                self.take()
                present = True
            self.expect_kw("null")
            return self._presence(field, present)
        if self.is_kw("in"):
            self.take()
            values = self.value_list(field)
            cond = f"{{v}} IN ({', '.join('?' for _ in values)})"
            return self._wrap(field, cond, values, negate)
        if self.is_kw("like"):
            self.take()
            vtok = self.tok
            if vtok.kind not in ("string", "word") or (vtok.kind == "word" and vtok.lower in KEYWORDS):
                raise self.fail("expected a pattern after 'like', e.g. 'resnet%'")
            self.take()
            pattern = _unquote(vtok.text) if vtok.kind == "string" else vtok.text
            return self._wrap(field, "{v} LIKE ?", [pattern], negate)
        if self.tok.kind != "op":
            raise self.fail(f"expected a comparison (=, !=, <, <=, >, >=, in, like) after {tok.text!r}")
        op = OPS[self.take().text]
        value = self.value(field)
        return self._wrap(field, f"{{v}} {op} ?", [value], False)

    def value_list(self, field: Field) -> list[object]:
        if self.tok.kind != "lparen":
            raise self.fail("expected '(' to start the list after 'in'")
        self.take()
        values = [self.value(field)]
        while self.tok.kind == "comma":
            self.take()
            values.append(self.value(field))
        if self.tok.kind != "rparen":
            raise self.fail("expected ',' or ')' in the list")
        self.take()
        return values

    def value(self, field: Field) -> object:
        tok = self.tok
        if tok.kind == "string":
            value: object = _unquote(tok.text)
        elif tok.kind == "date":
            value = tok.text
        elif tok.kind == "number":
            value = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                value = float(value)  # SQLite integers are 64-bit; compare such numbers as reals
        elif tok.kind == "duration":
            seconds = float(tok.text[:-1]) * UNITS[tok.text[-1]]
            if field.namespace is None and field.name in TIME_ATTRIBUTES:
                value = self.now - seconds  # created > 2d: within the last two days
            else:
                value = seconds
        elif tok.kind == "word" and tok.lower in ("true", "false"):
            value = 1 if tok.lower == "true" else 0
        elif tok.kind == "word" and tok.lower not in KEYWORDS:
            value = tok.text
        else:
            raise self.fail("expected a value (a number, a 'quoted string', a word, or a duration like 2h)")
        self.take()
        if field.namespace is None and field.name in TIME_ATTRIBUTES and isinstance(value, str):
            value = self._time_value(value, tok)
        if field.namespace is None and field.name == "status" and isinstance(value, str):
            if value.lower() not in STATUSES:
                raise self.fail(f"unknown status {value!r}; statuses are {', '.join(STATUSES)}", tok)
            value = value.lower()
        if isinstance(value, float) and math.isnan(value):
            raise self.fail("nan cannot be compared", tok)
        return value

    def _time_value(self, text: str, tok: Token) -> float:
        from datetime import datetime

        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            raise self.fail(f"{text!r} is not a date; write 2026-11-01, '2026-11-01 14:00' or a duration like 3d", tok) from None

    def _presence(self, field: Field, present: bool) -> str:
        if field.namespace is None:
            return f"({_attribute_sql(field, self.params, self.now)} IS {'NOT ' if present else ''}NULL)"
        table, _ = NAMESPACES[field.namespace]
        self.params.append(field.name)
        exists = f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = runs.id AND x.key = ?)"
        return exists if present else f"(NOT {exists})"

    def _wrap(self, field: Field, cond: str, values: list[object], negate: bool) -> str:
        if field.namespace is None:
            sql = "(" + cond.format(v=_attribute_sql(field, self.params, self.now)) + ")"
            self.params.extend(values)
        else:
            table, column = NAMESPACES[field.namespace]
            self.params.append(field.name)
            self.params.extend(values)
            sql = (
                f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = runs.id AND x.key = ? AND "
                + cond.format(v=f"x.{column}")
                + ")"
            )
        return f"(NOT {sql})" if negate else sql


def compile_where(expr: str, now: float | None = None) -> tuple[str, list[object]]:
    """SQL condition over `runs` and its parameters."""
    comp = Compiler(expr, now)
    sql = comp.compile()
    return sql, comp.params


HIDE_ARCHIVED = "runs.archived = 0"


def compile_filter(expr: str | None, now: float | None = None, archived: bool = False) -> tuple[str | None, list[object]]:
    """What a listing shows: the --where (None or blank: every run) with archived runs left out, unless
    `archived` (--archived) or the expression itself names the field `archived` (archived = 1)."""
    if expr is None or not expr.strip():
        return (None, []) if archived else (HIDE_ARCHIVED, [])
    comp = Compiler(expr, now)
    sql = comp.compile()
    if archived or Field(None, "archived") in comp.fields:
        return sql, comp.params
    return f"{HIDE_ARCHIVED} AND {sql}", comp.params


def compile_sort(spec: str, now: float | None = None) -> tuple[str, list[object]]:
    """`-metrics.val_acc,name` -> ORDER BY text and parameters. Missing values sort last."""
    parts: list[str] = []
    params: list[object] = []
    offset = 0
    for raw in spec.split(","):
        start, offset = offset, offset + len(raw) + 1
        item = raw.strip()
        desc = item.startswith("-")
        name = item[1:].strip() if desc or item.startswith("+") else item
        field = parse_field(name)
        if field is None:
            pos = start + (len(raw) - len(raw.lstrip()))
            raise _fail(spec, pos, f"unknown sort key {name!r}; use params.NAME, metrics.NAME, tags.NAME or "
                        + ", ".join(ATTRIBUTES), "--sort")
        if field.namespace is None:
            expr = _attribute_sql(field, params, time.time() if now is None else now)
        else:
            table, column = NAMESPACES[field.namespace]
            expr = f"(SELECT x.{column} FROM {table} x WHERE x.run_id = runs.id AND x.key = ?)"
            params.append(field.name)
        parts.append(f"{expr} {'DESC' if desc else 'ASC'} NULLS LAST")
    return ", ".join(parts), params
