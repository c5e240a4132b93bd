"""Set-based writes of many rows in one statement whose text does not grow with the rows.

A multi-row ``INSERT ... VALUES (%s, ...), (%s, ...)`` with thousands of placeholders costs
more in the driver than in the database: psycopg splits the statement at every placeholder, and
a statement of each new length misses its cache (measured: a third of the payload-logger drain's
time). On PostgreSQL ``unnest_insert_sql`` writes the rows as one array per column instead —
``INSERT INTO t (a, b) SELECT * FROM unnest(%s::bigint[], %s::text[])`` — so the statement has
one parameter per column, is the same for any number of rows, and is parsed once; the arrays
go in the binary format, bound by the server (``execute_arrays``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from django.db import connection, models


def _array_type(field: models.Field) -> str:
    db_type = field.db_type(connection)
    if db_type is None:
        raise ValueError(f"{field} has no column")
    base = db_type.split("(")[0].strip().lower()
    if base in ("varchar", "char", "character varying", "character"):
        # text, not varchar(n): an explicit cast to varchar(n) truncates silently, where the
        # column raises on a value too long (the behaviour of an INSERT ... VALUES).
        return "text[]"
    if base == "jsonb":
        return "text[]::jsonb[]"  # values given as JSON text
    return f"{db_type}[]"


def unnest_insert_sql(model: type[models.Model], names: Sequence[str], *, suffix: str = "") -> str:
    """PostgreSQL: the statement inserting rows of ``model``'s fields ``names`` given as one list
    per column (``columns_of``); JSON fields take JSON text. ``suffix`` follows (ON CONFLICT,
    RETURNING). Run it with ``execute_arrays`` (binary parameters need the server's binding)."""
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    # %b: the arrays go in PostgreSQL's binary format (run through ``execute_arrays``): psycopg
    # writes the text format element by element with a regular expression, ~9× slower.
    arrays = ", ".join(f"%b::{_array_type(field)}" for field in fields)
    # Identifiers come from model metadata (quoted); values are parameters.
    return (f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "  # noqa: S608
            f"SELECT * FROM unnest({arrays}) {suffix}").strip()


def columns_of(rows: Iterable[Sequence], width: int) -> list[list]:
    """Rows (tuples) turned into one list per column, the parameters of ``unnest_insert_sql``."""
    columns: list[list] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def json_text(value) -> str | None:
    return None if value is None else json.dumps(value)


def execute_arrays(sql: str, columns: list[list]) -> list[tuple]:
    """Run an ``unnest_insert_sql`` statement on the current connection, in its transaction,
    with the arrays bound by the server (psycopg's own cursor, binary dumpers in C) instead of
    Django's client-side cursor, which quotes every array element into the SQL text in Python
    (measured: 2.5 s of a 22 s payload-logger drain). Returns the rows of a RETURNING clause
    (empty without one). Errors are Django's, as from ``connection.cursor()``.

    A bound array has one element type (so it was through Django's cursor): a column mixing
    ints and floats is sent as floats."""
    import psycopg

    for column in columns:
        types = set(map(type, column))
        if float in types and int in types:
            column[:] = [float(v) if type(v) is int else v for v in column]
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, columns)
        return cursor.fetchall() if cursor.description else []
