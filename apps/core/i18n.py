"""Page language: Korean by default, English on request.

The switcher in the top bar posts to ``language_set`` (Django's ``set_language``, which sets the language
cookie). For a logged-in user the choice is also stored (``UserLanguage``) and copied into the session, so it
follows them to every browser they log in from; ``UserLanguageMiddleware`` activates it on each request."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils import translation
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from .models import UserLanguage

SESSION_KEY = "hoga_language"


_BILINGUAL = re.compile(r"^(.*[\uac00-\ud7a3)])\s+([A-Za-z][^\uac00-\ud7a3]*)$", re.S)
_BILINGUAL_BRACKETED = re.compile(r"^([A-Za-z0-9 ]*?)\s*([\uac00-\ud7a3][^()]*?)\s*\(([^()\uac00-\ud7a3]+)\)$")


def bilingual(text, language: str | None = None) -> str:
    """A built-in text written in both languages in the page's language, each " · " part on its own: Korean
    first ("설날 연휴 Seollal" -> "설날 연휴" / "Seollal") or English in brackets ("Hoga 모의 엔진 (paper engine)"
    -> "Hoga 모의 엔진" / "Hoga paper engine"). Any other text (an operator's note) is shown as it is."""
    if not isinstance(text, str):
        return "" if text is None else str(text)
    korean = (language or translation.get_language() or "ko").split("-")[0] == "ko"
    return " · ".join(_bilingual_part(part, korean) for part in text.split(" · "))


def _bilingual_part(text: str, korean: bool) -> str:
    match = _BILINGUAL_BRACKETED.match(text.strip())
    if match:
        lead = f"{match.group(1).strip()} " if match.group(1).strip() else ""
        return lead + (match.group(2) if korean else match.group(3))
    match = _BILINGUAL.match(text.strip())
    if not match:
        return text
    return match.group(1) if korean else match.group(2)


def supported(code: str | None) -> str | None:
    """``code`` when it is one of ``settings.LANGUAGES``, else None."""
    return code if code and code in dict(settings.LANGUAGES) else None


def user_language_save(*, user, language: str) -> None:
    UserLanguage.objects.update_or_create(user=user, defaults={"language": language})


def user_language_get(user) -> str | None:
    row = UserLanguage.objects.filter(user=user).values_list("language", flat=True).first()
    return supported(row)


@require_POST
def language_set(request):
    """Django's ``set_language`` (cookie, redirect back to ``next``), remembered for a logged-in user."""
    response = set_language(request)
    language = supported(request.POST.get("language"))
    if language and request.user.is_authenticated:
        user_language_save(user=request.user, language=language)
        request.session[SESSION_KEY] = language
    return response


def copy_language_on_login(sender, request, user, **kwargs) -> None:
    """``user_logged_in``: the stored choice goes into the new session."""
    language = user_language_get(user)
    if language and request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = language


class UserLanguageMiddleware:
    """After ``LocaleMiddleware`` and authentication: a logged-in user's stored language wins over the cookie
    (another browser's choice), and the cookie is brought in line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = None
        session = getattr(request, "session", None)
        if session is not None and getattr(request, "user", None) is not None and request.user.is_authenticated:
            language = supported(session.get(SESSION_KEY))
        if language and language != getattr(request, "LANGUAGE_CODE", None):
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = self.get_response(request)
        if language and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != language:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                language,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )
        if language:
            response.headers.setdefault("Content-Language", language)
        return response
