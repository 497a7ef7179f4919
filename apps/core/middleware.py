"""Request guards that run before any view.

``InputGuardMiddleware``: a path, query parameter or form field holding NUL or another control character
is refused with 400 before any view or query sees it (PostgreSQL cannot store NUL: such a value used to
reach the database and answer 500). One-line values (path, query parameters) refuse every C0 control
character, so ``code=005930%0A`` is not a code; form fields keep tab, CR and LF (text areas).
"""

from __future__ import annotations

from django.http import HttpResponseBadRequest, JsonResponse

from .jsonsafe import ANY_CONTROL_RE, CONTROL_RE

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _bad(request, where: str):
    message = f"The {where} contains NUL or other control characters."
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "invalid_characters", "message": message, "fields": {where: ["Invalid characters."]}}},
            status=400,
        )
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


class InputGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if ANY_CONTROL_RE.search(request.path):
            return _bad(request, "path")
        for key, values in request.GET.lists():
            if ANY_CONTROL_RE.search(key) or any(ANY_CONTROL_RE.search(v) for v in values):
                return _bad(request, "query")
        if request.method == "POST" and request.content_type in FORM_TYPES:
            try:
                post = request.POST
            except Exception:  # malformed multipart / too many fields: Django answers it itself later
                post = None
            if post is not None:
                for key, values in post.lists():
                    if CONTROL_RE.search(key) or any(isinstance(v, str) and CONTROL_RE.search(v) for v in values):
                        return _bad(request, "form")
        return self.get_response(request)
