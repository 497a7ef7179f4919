"""API token authentication with expiry: a token older than ``API_TOKEN_TTL_DAYS`` is refused with
``token_expired`` (401); the user issues a new one (the admin's *Tokens* page, or deleting the old one)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed


class TokenExpired(AuthenticationFailed):
    default_detail = "The API token has expired; issue a new one."
    default_code = "token_expired"


def token_expired(created) -> bool:
    ttl = settings.API_TOKEN_TTL_DAYS
    return bool(ttl) and created < timezone.now() - timedelta(days=ttl)


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token.created):
            raise TokenExpired()
        return user, token
