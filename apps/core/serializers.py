"""Serializers whose fields are built once per class.

DRF builds a serializer's fields for every instance: ``Serializer.fields`` deep-copies the declared fields
(each ``Field.__deepcopy__`` calls the field's ``__init__`` again) and binds them. On the order path that was
about a tenth of the web process's CPU per request (profiled with py-spy). A flat serializer whose fields read
nothing from the serializer they are bound to can share one bound set between all its instances: binding sets
``field_name``, ``parent`` and ``source_attrs``, and the fields' parsing and rendering are pure functions of
their own arguments.

The shared set is used only when the instance has no context and is not partial (what a field may read through
``parent`` / ``root``); any other instance builds its own fields as DRF does.
"""

from __future__ import annotations

import threading
from typing import Any

from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

_lock = threading.Lock()


#: DRF's own field building (``Serializer.fields`` is a ``cached_property``): the declared fields copied and bound.
_build_fields = serializers.Serializer.fields.func  # type: ignore[attr-defined]


class SharedFieldsSerializer(serializers.Serializer[Any]):
    """A ``Serializer`` of plain fields (no nested serializers, no context-reading fields), built once per class."""

    @property
    def fields(self) -> BindingDict:  # type: ignore[override]
        own = self.__dict__.get("_own_fields")
        if own is not None:
            return own
        if self._context or self.partial:
            own = self.__dict__["_own_fields"] = _build_fields(self)
            return own
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            with _lock:
                shared = cls.__dict__.get("_shared_fields")
                if shared is None:
                    template = cls.__new__(cls)
                    serializers.Serializer.__init__(template)
                    shared = _build_fields(template)
                    cls._shared_fields = shared  # type: ignore[attr-defined]
        return shared
