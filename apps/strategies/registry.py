"""Which strategy classes exist: the built-ins and every ``Strategy`` subclass with a ``key`` in the modules the
operator lists in ``HOGA_STRATEGY_PACKAGES`` (dotted paths, comma-separated in the environment)."""

from __future__ import annotations

import functools
import importlib
import inspect
import logging

from django.conf import settings

from .builtins import BUILTINS
from .exceptions import UnknownStrategyKind
from .interface import Strategy

logger = logging.getLogger(__name__)


@functools.cache
def strategy_classes() -> dict[str, type[Strategy]]:
    found: dict[str, type[Strategy]] = {cls.key: cls for cls in BUILTINS}
    for dotted in settings.HOGA_STRATEGY_PACKAGES:
        module = importlib.import_module(dotted)
        for _name, member in inspect.getmembers(module, inspect.isclass):
            if issubclass(member, Strategy) and member is not Strategy and member.key and member.key not in found:
                found[member.key] = member
    return found


def strategy_class(kind: object) -> type[Strategy]:
    cls = strategy_classes().get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownStrategyKind(
            f"Unknown strategy kind {str(kind)[:40]!r}; one of {', '.join(sorted(strategy_classes()))}.",
            fields={"kind": ["Unknown."]},
        )
    return cls
