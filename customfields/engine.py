"""The one engine that turns referrals into output values, for every output.

Given a client and an ordered column list (standard fields, ``extra.<key>``, custom fields, each
with an output name), ``compile_columns`` resolves and compiles everything once. Then:

- Python back end, any database: ``rows(queryset)`` streams lists of text from one query
  (on PostgreSQL and SQLite its date-times come as the database's text, see
  ``customfields.fetch``); ``render_referral(referral)`` does one referral (API payloads), and
  ``render_row`` one row of the ORM's values of ``lookups``;
- SQL back end, PostgreSQL: ``select_sql(where)`` is one SELECT computing the same text, which
  ``COPY (...) TO STDOUT`` can stream as CSV.

Both back ends produce the same text to the byte (tests/test_customfields_properties.py).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from customfields.clock import ZoneClock
from customfields.fetch import Dialect, dialect_for, fetched_rows
from customfields.models import CustomField
from customfields.sources import (
    DATE,
    DATETIME,
    DECIMAL,
    ID,
    INTEGER,
    IP,
    STANDARD_FIELDS,
    StandardField,
    extra_key,
    extra_text,
    find_standard,
    float_decimal_text,
    python_renderer,
    sql_extra,
    sql_iso_datetime,
    sql_local_time,
    sql_offset,
    sql_renderer,
    usual_offsets,
)
from customfields.sqltext import literal
from customfields.transforms import TRANSFORMS


class UnknownReference(ValueError):
    """``name`` is no standard field, ``extra.<key>`` or custom field of the client;
    ``referrer`` is the custom field that names it (``None``: the column list does)."""

    def __init__(self, name: str, referrer: str | None = None) -> None:
        self.name, self.referrer = name, referrer
        named_by = f" (named by the custom field {referrer!r})" if referrer else ""
        super().__init__(f"Unknown field {name!r}{named_by}: not a standard field, "
                         "extra.<key>, or a custom field of this client.")  # fmt: skip


class CycleError(ValueError):
    pass


@dataclass(frozen=True)
class Column:
    source: str
    output: str


@dataclass(frozen=True)
class Value:
    """One resolvable name, written for both back ends.

    ``expr`` is a Python expression over the fetched ``row`` tuple and names bound in the
    compile's namespace (never user text: that stays in bound objects); ``raw_expr`` gives the
    untouched value of a standard field, for transforms that take a date itself (the ORM's
    date or datetime, or in fetched rows the database's text of it).
    """

    expr: str
    sql: str
    raw_expr: str | None = None
    raw_sql: str | None = None
    # True when the text can never start a spreadsheet formula (ids, ages, dates, addresses).
    formula_safe: bool = False
    # What the text stands for, for outputs that keep types (``_STANDARD_CELLS``).
    cell: str = "text"


@dataclass
class _Context:
    zone_name: str
    custom_fields: dict[str, CustomField]
    # None: rows of the ORM's values; else rows fetched as ``customfields.fetch`` describes.
    dialect: Dialect | None = None
    lookups: list[str] = field(default_factory=list)
    namespace: dict[str, Any] = field(default_factory=dict)
    joins: set[str] = field(default_factory=set)
    _cache: dict[str, Value] = field(default_factory=dict)
    _stack: list[str] = field(default_factory=list)
    _clocks: dict[str, ZoneClock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.zone = zoneinfo.ZoneInfo(self.zone_name)

    def clock(self, zone_name: str) -> ZoneClock:
        """Local times in ``zone_name`` of the fetched rows' date-time text."""
        if zone_name not in self._clocks:
            zone = zoneinfo.ZoneInfo(zone_name)
            self._clocks[zone_name] = ZoneClock(zone, self.dialect.fits, self.dialect.parse)
        return self._clocks[zone_name]

    def fetched_text(self, standard: StandardField) -> bool:
        """True when fetched rows hold ``standard``'s value as the database's text."""
        return self.dialect is not None and standard.type in self.dialect.text_types

    def index(self, lookup: str) -> int:
        if lookup not in self.lookups:
            self.lookups.append(lookup)
        return self.lookups.index(lookup)

    def bind(self, obj: Any) -> str:
        """A generated name for ``obj`` in the row renderer's namespace."""
        name = f"_{len(self.namespace)}"
        self.namespace[name] = obj
        return name

    def local_time(self, timestamp_sql: str, zone_name: str) -> tuple[str, str]:
        """SQL of (local wall time, UTC offset interval) of ``timestamp_sql`` in
        ``zone_name``."""
        return sql_local_time(timestamp_sql, literal(zone_name))

    def offset_text(self, timestamp_sql: str, zone_name: str, separator: str = ":") -> str:
        """SQL of a row's UTC offset as text (``+01:00``, or ``+0100`` with no separator)."""
        _, offset = self.local_time(timestamp_sql, zone_name)
        return sql_offset(offset, separator, usual_offsets(zoneinfo.ZoneInfo(zone_name)))

    def iso_datetime_sql(self, timestamp_sql: str, zone_name: str) -> str:
        usual = usual_offsets(zoneinfo.ZoneInfo(zone_name))
        return sql_iso_datetime(timestamp_sql, literal(zone_name), usual)

    def resolve(self, name: str) -> Value:
        key = extra_key(name)
        cache_key = f"extra.{key}" if key is not None else name.lower()
        if cache_key not in self._cache:
            self._cache[cache_key] = self._resolve(name, key)
        return self._cache[cache_key]

    def _resolve(self, name: str, key: str | None) -> Value:
        if key is not None:
            position = self.index("extra")
            expr = f"{self.bind(extra_text)}(row[{position}], {self.bind(key)})"
            return Value(expr=expr, sql=sql_extra(key))
        standard = find_standard(name)
        if standard is not None:
            position = self.index(standard.lookup)
            self.joins.update(part for part in ("c.", "cp.") if standard.column.startswith(part))
            raw = f"row[{position}]"
            render = self._python_renderer(standard)
            expr = f'({raw} or "")' if render is None else f"{self.bind(render)}({raw})"
            sql = sql_renderer(standard, lambda ts: self.iso_datetime_sql(ts, self.zone_name))
            return Value(expr=expr, sql=sql, raw_expr=raw, raw_sql=standard.column,
                         formula_safe=standard.type in FORMULA_SAFE_TYPES,
                         cell=_STANDARD_CELLS.get(standard.type, "text"))  # fmt: skip
        custom = self.custom_fields.get(name.lower())
        if custom is None:
            raise UnknownReference(name)
        return self._custom(custom)

    def _python_renderer(self, standard: StandardField) -> Callable[[Any], str] | None:
        if standard.type == DECIMAL and self.dialect is not None and self.dialect.float_decimals:
            return float_decimal_text
        if not self.fetched_text(standard):
            return python_renderer(standard, self.zone)
        # Fetched text: dates and decimals are already written as the output writes them.
        return self.clock(self.zone_name).iso if standard.type == DATETIME else None

    def _custom(self, custom: CustomField) -> Value:
        if custom.name.lower() in self._stack:
            chain = " → ".join([*self._stack, custom.name.lower()])
            raise CycleError(f"Custom fields refer to each other in a cycle: {chain}.")
        self._stack.append(custom.name.lower())
        try:
            transform = TRANSFORMS[custom.kind]
            compiled = transform.build(custom, self)
            if compiled.expr is not None:  # template, constant: built from other values
                return Value(expr=compiled.expr, sql=compiled.sql(None))
            source = self.resolve(custom.source)
            function = self.bind(compiled.python)
            if getattr(transform, "uses_raw", False):
                return Value(expr=f"{function}({source.raw_expr})",
                             sql=compiled.sql(source.raw_sql),
                             cell=_custom_cell(custom))  # fmt: skip
            return Value(expr=f"{function}({source.expr})", sql=compiled.sql(source.sql))
        except UnknownReference as exc:
            if exc.referrer is not None:
                raise
            raise UnknownReference(exc.name, custom.name) from None
        finally:
            self._stack.pop()


class CompiledColumns:
    """A column list compiled for one client: run it over any number of referrals."""

    def __init__(
        self,
        columns: list[Column],
        make_context: Callable[[Dialect | None], _Context],
        *,
        neutralise_formulae: bool,
    ) -> None:
        self.columns = columns
        # Output names are user text, and a header is a cell like any other.
        outputs = [column.output for column in columns]
        self.headers = list(map(neutralise_formula, outputs)) if neutralise_formulae else outputs
        self._make_context = make_context
        context = make_context(None)
        values = [context.resolve(column.source) for column in columns]
        self.lookups = list(context.lookups)
        self._sql = [value.sql for value in values]
        # Columns to guard against spreadsheet formulae (none unless asked).
        self._guarded = [neutralise_formulae and not value.formula_safe for value in values]
        self.cell_types = [value.cell for value in values]
        self._joins = set(context.joins)
        self.render_row = self._renderer(context, values)
        self._fetched_renderers: dict[str, Callable[[tuple], list]] = {}

    def _renderer(self, context: _Context, values: list[Value]) -> Callable[[tuple], list]:
        expressions = [value.expr for value in values]
        guard = None
        if any(self._guarded):
            positions = [n for n, guarded in enumerate(self._guarded) if guarded]
            guard = context.bind(_FormulaGuard(positions))
        return _row_renderer(expressions, context.namespace, guard)

    def _fetched_renderer(self, dialect: Dialect) -> Callable[[tuple], list]:
        """The row function over rows fetched for ``dialect``, compiled on first use."""
        if dialect.vendor not in self._fetched_renderers:
            context = self._make_context(dialect)
            values = [context.resolve(column.source) for column in self.columns]
            assert context.lookups == self.lookups  # one resolution order, whatever the rows
            self._fetched_renderers[dialect.vendor] = self._renderer(context, values)
        return self._fetched_renderers[dialect.vendor]

    # Python back end
    def rows(self, queryset, *, chunk_size: int = 2000) -> Iterator[list[str]]:
        """Stream the referrals of ``queryset`` as lists of text, in the queryset's order."""
        dialect = dialect_for(queryset)
        if dialect is None:
            rows = queryset.values_list(*self.lookups).iterator(chunk_size=chunk_size)
            return map(self.render_row, rows)
        fields = [_LOOKUP_FIELDS.get(lookup) for lookup in self.lookups]
        rows = fetched_rows(queryset, fields, self.lookups, dialect, chunk_size)
        return map(self._fetched_renderer(dialect), rows)

    def render_referral(self, referral) -> list[str]:
        return self.render_row(tuple(_attribute(referral, lookup) for lookup in self.lookups))

    # SQL back end
    def select_sql(
        self,
        where: str = "TRUE",
        order_by: str = "r.created_at, r.id",
        *,
        empty_as_null: bool = False,
    ) -> str:
        """One SELECT of the columns as text, over referral ``r`` (and client ``c``, campaign
        ``cp`` when a column needs them); ``where`` and ``order_by`` are SQL the caller
        writes (no user text). ``empty_as_null``: an empty value comes as NULL, which COPY
        writes as nothing where it writes ``""`` for empty text (``customfields.csvfile``)."""

        def finished(sql: str) -> str:
            return f"NULLIF({sql}, '')" if empty_as_null else sql

        guarding = any(self._guarded)  # then the outer SELECT finishes the values
        expressions = ", ".join(
            f"{sql if guarding else finished(sql)} AS c{number}"
            for number, sql in enumerate(self._sql, start=1)
        )
        joins = []
        if "c." in self._joins:
            joins.append("JOIN referrals_client c ON c.id = r.client_id")
        if "cp." in self._joins:
            joins.append("JOIN referrals_campaign cp ON cp.id = r.campaign_id")
        source = f"FROM referrals_referral r {' '.join(joins)}"
        if not guarding:
            return f"SELECT {expressions} {source} WHERE {where} ORDER BY {order_by}"
        # Guard each finished value once (wrapping the expressions themselves would compute
        # each two or three times): the inner SELECT computes and sorts narrow rows, the outer
        # guards and orders on the keys carried through, which PostgreSQL knows are already
        # sorted (no second sort): the order is the query's own, not an accident of the plan.
        keys = [key.strip() for key in order_by.split(",")]
        carried = ", ".join(f"{key} AS o{n}" for n, key in enumerate(keys, start=1))
        guarded = ", ".join(
            finished(sql_neutralise_formula(f"s.c{number}") if guard else f"s.c{number}")
            + f' AS "c{number}"'
            for number, guard in enumerate(self._guarded, start=1)
        )
        outer_order = ", ".join(f"s.o{n}" for n in range(1, len(keys) + 1))
        return (
            f"SELECT {guarded} FROM (SELECT {expressions}, {carried} {source} WHERE {where} "
            f"ORDER BY {order_by}) AS s ORDER BY {outer_order}"
        )


def compile_columns(
    *,
    client,
    columns: Iterable[Column],
    custom_fields: Iterable[CustomField] | None = None,
    neutralise_formulae: bool = False,
) -> CompiledColumns:
    """Compile ``columns`` for ``client``; custom fields are the client's unless given.

    ``neutralise_formulae`` is for files a spreadsheet may open (CSV, XLSX): a value or header
    that a spreadsheet would take for a formula gets a leading apostrophe (``FORMULA_STARTS``).
    """
    if custom_fields is None:
        custom_fields = CustomField.objects.filter(client=client)
    by_name = {cf.name.lower(): cf for cf in custom_fields}

    def make_context(dialect: Dialect | None) -> _Context:
        return _Context(zone_name=client.time_zone, custom_fields=by_name, dialect=dialect)

    return CompiledColumns(list(columns), make_context, neutralise_formulae=neutralise_formulae)


# A spreadsheet takes a cell starting with one of these for a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


FORMULA_SAFE_TYPES = {INTEGER, ID, DATE, DATETIME, IP}
# What a column's text stands for (``CompiledColumns.cell_types``): "integer", "decimal" and
# "number" (an Excel serial) are numbers, "date" is ``YYYY-MM-DD``, "datetime" ISO 8601 in the
# client's zone; anything else is "text".
_STANDARD_CELLS = {ID: "integer", INTEGER: "integer", DECIMAL: "decimal", DATE: "date",
                   DATETIME: "datetime"}  # fmt: skip


def _custom_cell(custom: CustomField) -> str:
    # An Excel serial number is a number; every other custom output is the client's text.
    return "number" if custom.kind == "datetime" and custom.date_output == "excel" else "text"


_LOOKUP_FIELDS = {standard.lookup: standard for standard in STANDARD_FIELDS.values()}


def is_formula(value: str) -> bool:
    """True when a spreadsheet would take ``value`` for a formula."""
    return value[:1] in FORMULA_STARTS


def neutralise_formula(value: str) -> str:
    """``value``, prefixed with an apostrophe (shown as text) when it would be a formula."""
    return "'" + value if is_formula(value) else value


def sql_neutralise_formula(column: str) -> str:
    """Prefix a would-be formula with an apostrophe, which spreadsheets show as text
    (``ascii`` reads the first character's code without copying the value)."""
    codes = ", ".join(str(ord(start)) for start in FORMULA_STARTS)
    apostrophe = literal("'")
    return (
        f"(CASE WHEN ascii({column}) IN ({codes}) THEN {apostrophe} || {column} ELSE {column} END)"
    )


_GUARD_SEPARATOR = "\x1f"
_GUARD_STARTS = tuple(_GUARD_SEPARATOR + start for start in FORMULA_STARTS)


class _FormulaGuard:
    """Prefixes the would-be formulae among a row's ``positions`` (``FORMULA_STARTS``).

    Almost no row holds one: a few substring searches over the joined row (in C) clear a row,
    where a test per value cost ~0.1 us each; a hit (maybe in a column not guarded, or a
    separator inside a value) takes the exact test per guarded value.
    """

    def __init__(self, positions: list[int]) -> None:
        self.positions = positions

    def __call__(self, values: list[str]) -> list[str]:
        text = _GUARD_SEPARATOR + _GUARD_SEPARATOR.join(values)
        if not any(map(text.__contains__, _GUARD_STARTS)):
            return values
        for position in self.positions:
            values[position] = neutralise_formula(values[position])
        return values


def _row_renderer(
    expressions: list[str], namespace: dict[str, Any], guard: str | None = None
) -> Callable[[tuple], list]:
    """One function building a whole output row, generated once per compile (``guard``: the
    bound name of a ``_FormulaGuard`` the row goes through).

    Per-column closures would cost several calls per value per row; the generated list
    display reads text columns straight from the row and calls only what must compute. The
    code holds row positions and generated names only: user text stays in bound objects.
    """
    row = f"[{', '.join(expressions)}]"
    source = f"def render(row):\n    return {f'{guard}({row})' if guard else row}\n"
    scope = dict(namespace)
    exec(compile(source, "<customfields row renderer>", "exec"), scope)  # noqa: S102
    return scope["render"]


def standard_columns() -> list[Column]:
    return [Column(name, name) for name in STANDARD_FIELDS]


def _attribute(referral, lookup: str) -> Any:
    value = referral
    for part in lookup.split("__"):
        value = getattr(value, part)
        if value is None:
            return None
    return value
