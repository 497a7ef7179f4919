"""Serializers whose fields are built once per class: the same output and validation as DRF's per-instance
fields, shared only where nothing can read the instance through a field, and safe across threads."""

from __future__ import annotations

import copy
import threading
from types import SimpleNamespace
from typing import Any

from rest_framework import serializers

from apps.core.serializers import SharedFieldsSerializer


class Shared(SharedFieldsSerializer):
    id = serializers.IntegerField()
    code = serializers.CharField(max_length=6, source="stock.code")
    price = serializers.IntegerField(allow_null=True, min_value=1)
    ratio = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True)
    side = serializers.ChoiceField(choices=["BUY", "SELL"])
    flag = serializers.BooleanField(required=False, default=False)


#: DRF's own serializer with the same fields, built per instance.
Plain = type("Plain", (serializers.Serializer,), copy.deepcopy(Shared._declared_fields))


def _row(n: int) -> SimpleNamespace:
    return SimpleNamespace(
        id=n, stock=SimpleNamespace(code=f"{n:06d}"), price=None if n % 3 else n * 10,
        ratio=None if n % 2 else "1.5", side="BUY" if n % 2 else "SELL", flag=bool(n % 5),
    )  # fmt: skip


def test_output_is_drfs_and_the_fields_are_built_once():
    rows = [_row(n) for n in range(20)]
    assert [Shared(r).data for r in rows] == [Plain(r).data for r in rows]
    assert Shared(rows[0]).fields is Shared(rows[1]).fields
    assert Shared(rows, many=True).data == Plain(rows, many=True).data


def test_validation_is_drfs_and_errors_stay_with_their_instance():
    good = {"id": 1, "code": "005930", "price": 5, "ratio": "2.25", "side": "SELL"}
    bad = {"id": "x", "code": "1234567", "price": 0, "ratio": "1.234", "side": "HOLD"}
    for data in (good, bad, {}):
        shared, plain = Shared(data=data), Plain(data=data)
        assert shared.is_valid() == plain.is_valid()
        assert shared.errors == plain.errors
        if plain.errors == {}:
            assert shared.validated_data == plain.validated_data


def test_an_instance_with_context_or_partial_gets_fields_of_its_own():
    shared = Shared(_row(1)).fields
    with_context = Shared(_row(1), context={"request": None})
    partial = Shared(data={"id": 3}, partial=True)
    assert with_context.fields is not shared and with_context.fields["id"].parent is with_context
    assert partial.fields is not shared and partial.is_valid(), partial.errors
    assert partial.validated_data == {"id": 3}  # partial: nothing else is required (DRF's behaviour)


def test_threads_validating_at_once_each_get_their_own_answer():
    results: dict[int, Any] = {}
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        for n in range(300):
            key = t * 1000 + n
            data = {"id": key, "code": f"{key % 999999:06d}", "price": None if n % 4 else key + 1,
                    "ratio": None, "side": "BUY" if n % 2 else "HOLD"}  # fmt: skip
            s = Shared(data=data)
            results[key] = (s.is_valid(), dict(s.validated_data) if not s.errors else sorted(s.errors))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 8 * 300
    for key, (ok, value) in results.items():
        if key % 1000 % 2:
            assert ok and value["id"] == key and value["stock"]["code"] == f"{key % 999999:06d}", (key, value)
        else:
            assert not ok and value == ["side"], (key, value)
