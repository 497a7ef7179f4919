"""Writes the ORM does slowly or in too many round trips: many rows of one table changed in one ``UPDATE ...
FROM (VALUES ...)`` (``update_rows``), a row inserted only when a guarding update succeeds, in one statement
(``insert_guarded``), many rows inserted without reading anything back (``insert_rows``), and psycopg's
pipeline mode (``pipeline``).

Django's ``bulk_update`` builds a ``CASE`` expression per field and row and resolves each in Python (about
a millisecond per row and field here); this builds one parameterised statement instead. Increments
(``add``) are computed by PostgreSQL on the row itself (``col = t.col + v.col``), so they are as atomic as
an ``F()`` update; callers hold the row locks anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)


def update_rows(
    model: type[Model],
    rows: Sequence[Mapping[str, object]],
    *,
    assign: Sequence[str] = (),
    add: Sequence[str] = (),
) -> int:
    """For each row (a mapping with ``"pk"`` and the named fields): set ``assign`` fields to its values and
    add its values to the ``add`` fields. Returns the number of rows updated (not known yet in pipeline
    mode). Fields are model field names; values are what the field would save (``get_db_prep_save``)."""
    if not rows:
        return 0
    if not assign and not add:
        raise ValueError("nothing to update")
    meta = model._meta
    pk = meta.pk
    fields = [meta.get_field(name) for name in (*assign, *add)]
    columns = [pk.column, *(f.column for f in fields)]
    casts = [pk.rel_db_type(connection)]  # the column type (bigint for a BigAutoField)
    casts += [f.db_type(connection) for f in fields]
    placeholder = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    params: list[object] = []
    for row in rows:
        params.append(pk.get_db_prep_save(row["pk"], connection))
        params.extend(f.get_db_prep_save(row[f.name], connection) for f in fields)
    quote = connection.ops.quote_name
    sets = [f"{quote(f.column)} = v.{quote(f.column)}" for f in fields[: len(assign)]]
    sets += [f"{quote(f.column)} = t.{quote(f.column)} + v.{quote(f.column)}" for f in fields[len(assign) :]]
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {', '.join(sets)} "
        f"FROM (VALUES {', '.join([placeholder] * len(rows))}) AS v({', '.join(quote(c) for c in columns)}) "
        f"WHERE t.{quote(pk.column)} = v.{quote(pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def insert_guarded(instance: Model, *, guard_sql: str, guard_params: Sequence[object]) -> bool:
    """Insert ``instance`` only when ``guard_sql`` (an ``UPDATE ... RETURNING`` of at most one row) changes a
    row, both in one statement: ``WITH guard AS (...) INSERT ... SELECT ... FROM guard``. Returns whether it
    was inserted (then ``instance.pk`` is set).

    Outside a transaction the statement is its own transaction, so the row the guard updates is locked only
    while PostgreSQL runs it, never while the client is busy between statements; an error (a unique
    constraint) undoes the guard's update with it. Field values are prepared as ``Model.save`` would
    (``pre_save``, e.g. ``auto_now_add``); model validation is the caller's.
    """
    meta = instance._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and instance.pk is None)]
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    quote = connection.ops.quote_name
    sql = (
        f"WITH guard AS ({guard_sql}) "
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT {', '.join(f'%s::{f.db_type(connection)}' for f in fields)} FROM guard "
        f"RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*guard_params, *values])
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


def insert_rows(instances: Sequence[Model]) -> None:
    """Insert new instances of one model in one multi-row ``INSERT`` that returns nothing: in a pipeline it
    travels with the next statement whose result is read (or with the ``COMMIT``). Their primary keys stay
    unset. Values are prepared as ``Model.save`` would (``pre_save``); validation is the caller's."""
    if not instances:
        return
    meta = instances[0]._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    params: list[object] = []
    for instance in instances:
        params.extend(f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields)
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * len(instances))}"
    )
    connection.cursor().execute(sql, params)


def rows_as_instances(model: type[M], rows: Sequence[Sequence[object]], *, offset: int = 0) -> list[M]:
    """Model instances from rows whose columns ``offset``… are the model's concrete fields in order (as
    ``concrete_columns`` lists them), as a queryset would build them."""
    names = [f.attname for f in model._meta.concrete_fields]
    end = offset + len(names)
    return [model.from_db(connection.alias, names, row[offset:end]) for row in rows]


def concrete_columns(model: type[Model], alias: str) -> list[str]:
    """``alias.column`` for each concrete field of ``model``, in field order (for ``rows_as_instances``)."""
    quote = connection.ops.quote_name
    return [f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields]


@contextmanager
def pipeline() -> Iterator[None]:
    """psycopg's pipeline mode on Django's connection (inside a transaction): statements whose results are
    not read yet go to PostgreSQL together and are answered in one round trip, when a result is fetched or
    the block ends. Errors surface at that point, inside the caller's transaction. A no-op where libpq has
    no pipeline support."""
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    if not psycopg.Pipeline.is_supported():
        yield
        return
    with raw.pipeline():
        yield
