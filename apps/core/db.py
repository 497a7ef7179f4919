"""Writes the ORM does slowly or in too many round trips: many rows of one table changed in one ``UPDATE ...
FROM unnest(...)`` (``update_rows``), a row inserted only when a guarding update succeeds, in one statement
(``insert_guarded``), many rows inserted without reading anything back (``insert_rows``), and psycopg's
pipeline mode (``pipeline``).

Django's ``bulk_update`` builds a ``CASE`` expression per field and row and resolves each in Python (about
a millisecond per row and field here); this builds one parameterised statement instead. Increments
(``add``) are computed by PostgreSQL on the row itself (``col = t.col + v.col``), so they are as atomic as
an ``F()`` update; callers hold the row locks anyway.

Many rows travel as one array per column (``unnest(%s::bigint[], %s::varchar(4)[], ...)``), so a statement's
text depends on the model and the columns only, never on the number of rows: it is built once per process
(``_columns``, ``_insert_guarded_sql``) and psycopg parses it once (it keeps converted statements up to 4 kB;
a ``VALUES`` list of 35 rows of 16 columns is longer, and was split by a regular expression on every call).
Values are prepared as ``Model.save`` would (``get_db_prep_save``) with the connection resolved once per call,
not through the ``connection`` proxy per value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


@lru_cache(maxsize=256)
def _columns(model: type[Model], names: tuple[str, ...] | None) -> tuple[tuple[Field, ...], str, str]:
    """The fields ``names`` of ``model`` (``None``: its concrete fields but the primary key; ``"pk"``: the primary
    key), their quoted column list and their ``unnest`` arguments (one array parameter per column, cast to
    the column's type)."""
    conn = connections[DEFAULT_DB_ALIAS]
    meta = model._meta
    if names is None:
        fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    else:
        fields = tuple(meta.pk if name == "pk" else meta.get_field(name) for name in names)
    quote = conn.ops.quote_name
    # the primary key as a reference: bigint for a BigAutoField, not "bigint GENERATED ... AS IDENTITY"
    casts = [f.rel_db_type(conn) if f.primary_key else f.db_type(conn) for f in fields]
    column_list = ", ".join(quote(f.column) for f in fields)
    unnest = "unnest(" + ", ".join(f"%s::{cast}[]" for cast in casts) + ")"
    return fields, column_list, unnest


#: Field types whose ``get_db_prep_save`` returns a value of this exact Python type (or ``None``) unchanged, up to
#: a wrapper psycopg does not need here (every placeholder of these statements is cast to its column's type).
_PLAIN_TYPES: dict[str, type] = {
    "AutoField": int, "BigAutoField": int, "SmallAutoField": int, "IntegerField": int, "BigIntegerField": int,
    "SmallIntegerField": int, "PositiveIntegerField": int, "PositiveBigIntegerField": int,
    "PositiveSmallIntegerField": int, "CharField": str, "TextField": str, "BooleanField": bool,
}  # fmt: skip


@lru_cache(maxsize=1024)
def _plain_type(field: Field) -> type | None:
    target = field.target_field if field.is_relation else field  # a foreign key saves its target's value
    return _PLAIN_TYPES.get(target.get_internal_type())


def _prepared(field: Field, value: object, conn: BaseDatabaseWrapper) -> object:
    """``field.get_db_prep_save(value, conn)``, without its calls for a plain int, str, bool or ``None`` of a
    field that saves those as they are (preparing values was a seventh of a fill's CPU)."""
    plain = _plain_type(field)
    if plain is not None and (value is None or type(value) is plain):
        return value
    return field.get_db_prep_save(value, conn)


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
    keys = ("pk", *assign, *add)
    sql, fields = _update_rows_sql(model, tuple(assign), tuple(add))
    conn = connections[DEFAULT_DB_ALIAS]
    params = [[_prepared(f, row[key], conn) for row in rows] for f, key in zip(fields, keys, strict=True)]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@lru_cache(maxsize=64)
def _update_rows_sql(
    model: type[Model], assign: tuple[str, ...], add: tuple[str, ...]
) -> tuple[str, tuple[Field, ...]]:
    """``update_rows``' statement and its fields (the primary key, then ``assign``, then ``add``)."""
    fields, column_list, unnest = _columns(model, ("pk", *assign, *add))
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    pk = quote(fields[0].column)
    sets = [f"{quote(f.column)} = v.{quote(f.column)}" for f in fields[1 : 1 + len(assign)]]
    sets += [f"{quote(f.column)} = t.{quote(f.column)} + v.{quote(f.column)}" for f in fields[1 + len(assign) :]]
    sql = (
        f"UPDATE {quote(model._meta.db_table)} AS t SET {', '.join(sets)} "
        f"FROM {unnest} AS v({column_list}) WHERE t.{pk} = v.{pk}"
    )
    return sql, fields


def insert_guarded(instance: Model, *, guard_sql: str, guard_params: Sequence[object]) -> bool:
    """Insert ``instance`` only when ``guard_sql`` (an ``UPDATE ... RETURNING`` of at most one row) changes a
    row, both in one statement: ``WITH guard AS (...) INSERT ... SELECT ... FROM guard``. Returns whether it
    was inserted (then ``instance.pk`` is set).

    Outside a transaction the statement is its own transaction, so the row the guard updates is locked only
    while PostgreSQL runs it, never while the client is busy between statements; an error (a unique
    constraint) undoes the guard's update with it. Field values are prepared as ``Model.save`` would
    (``pre_save``, e.g. ``auto_now_add``); model validation is the caller's.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    model = type(instance)
    sql, fields = _insert_guarded_sql(model, instance.pk is not None, guard_sql)
    values = [_prepared(f, f.pre_save(instance, True), conn) for f in fields]
    with conn.cursor() as cursor:
        cursor.execute(sql, [*guard_params, *values])
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = conn.alias
    return True


@lru_cache(maxsize=64)
def _insert_guarded_sql(model: type[Model], with_pk: bool, guard_sql: str) -> tuple[str, tuple[Field, ...]]:
    conn = connections[DEFAULT_DB_ALIAS]
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if with_pk or not f.primary_key)
    quote = conn.ops.quote_name
    sql = (
        f"WITH guard AS ({guard_sql}) "
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT {', '.join(f'%s::{f.db_type(conn)}' for f in fields)} FROM guard "
        f"RETURNING {quote(meta.pk.column)}"
    )
    return sql, fields


def insert_rows(instances: Sequence[Model]) -> None:
    """Insert new instances of one model in one multi-row ``INSERT ... SELECT * FROM unnest(...)`` that returns
    nothing: in a pipeline it travels with the next statement whose result is read (or with the ``COMMIT``).
    Rows are inserted in the order given; their primary keys stay unset. Values are prepared as ``Model.save``
    would (``pre_save``); validation is the caller's."""
    if not instances:
        return
    conn = connections[DEFAULT_DB_ALIAS]
    model = type(instances[0])
    fields, column_list, unnest = _columns(model, None)
    params = [[_prepared(f, f.pre_save(instance, True), conn) for instance in instances] for f in fields]
    sql = f"INSERT INTO {conn.ops.quote_name(model._meta.db_table)} ({column_list}) SELECT * FROM {unnest}"
    conn.cursor().execute(sql, params)


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
