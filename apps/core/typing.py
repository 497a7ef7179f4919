"""Type names shared by the apps' annotations."""

from __future__ import annotations

from typing import Any, TypeAlias

#: A user as views, admin actions and consumers hand it over (``request.user``: the auth user model, or
#: ``AnonymousUser`` where authentication lets it through). Services rely on ``pk`` only and check
#: ownership themselves; the stubs cannot name the configured user model statically, hence ``Any``.
AnyUser: TypeAlias = Any
#: The JSON-ready dict of a snapshot or a message.
JSONDict: TypeAlias = dict[str, Any]
