"""API token authentication with expiry: a token older than ``API_TOKEN_TTL_DAYS`` is refused with
``token_expired`` (401); the user issues a new one (the admin's *Tokens* page, or deleting the old one).

A web process keeps a token's lookup (the token and its active user) for ``API_TOKEN_CACHE_SECONDS``, so an
API client's requests cost no authentication query; deleting the token or saving its user clears it in
this process at once (signals below), in the others within that time. Each request gets its own copies."""

from __future__ import annotations

import copy
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from .process_cache import ProcessCache

_tokens = ProcessCache("api_tokens", ttl=lambda: settings.API_TOKEN_CACHE_SECONDS, max_entries=5_000)


class TokenExpired(AuthenticationFailed):
    default_detail = "The API token has expired; issue a new one."
    default_code = "token_expired"


def token_expired(created) -> bool:
    ttl = settings.API_TOKEN_TTL_DAYS
    return bool(ttl) and created < timezone.now() - timedelta(days=ttl)


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        # Only successful lookups are kept: a wrong key always reaches the database (and its 401).
        user, token = _tokens.get(key, lambda: super(ExpiringTokenAuthentication, self).authenticate_credentials(key))
        if token_expired(token.created):
            raise TokenExpired()
        return copy.copy(user), copy.copy(token)


def _forget_token(sender, instance, **_kwargs) -> None:
    _tokens.invalidate(instance.key)


def _forget_tokens(sender, **_kwargs) -> None:  # a user changed (deactivated, password, staff): every lookup
    _tokens.invalidate()


post_delete.connect(_forget_token, sender=Token, dispatch_uid="api-token-cache-delete")
post_save.connect(_forget_token, sender=Token, dispatch_uid="api-token-cache-save")
post_save.connect(_forget_tokens, sender=get_user_model(), dispatch_uid="api-token-cache-user")
post_delete.connect(_forget_tokens, sender=get_user_model(), dispatch_uid="api-token-cache-user-delete")
