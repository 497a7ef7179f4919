import pytest
from rest_framework.test import APIClient


def test_unauthenticated_api_call_uses_the_error_shape(db):
    response = APIClient().get("/api/paper-trading/accounts")

    error = response.json()["error"]
    assert response.status_code in (401, 403)
    assert set(error) == {"code", "message", "fields"}
    assert (error["code"], error["fields"]) == ("not_authenticated", {})
    assert isinstance(error["message"], str) and error["message"]


def test_domain_error_becomes_400_with_code_and_fields(api_client):
    response = api_client.get("/api/marketdata/stocks/", {"market": "NASDAQ"})

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "unknown_market",
            "message": "Unknown market 'NASDAQ'.",
            "fields": {"market": ["one of ['KOSPI', 'KOSDAQ', 'KONEX']"]},
        }
    }


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        ("validation", 400, "validation_error"),
        ("notfound", 404, "not_found"),
        ("conflict", 409, "conflict"),
    ],
)
def test_exception_handler_maps_errors(exc, status, code):
    from django.http import Http404
    from rest_framework.exceptions import ValidationError

    from apps.core.exception_handler import api_exception_handler
    from apps.core.exceptions import Conflict

    error = {
        "validation": ValidationError({"quantity": ["must be positive"]}),
        "notfound": Http404(),
        "conflict": Conflict("client order id reused with different terms"),
    }[exc]

    response = api_exception_handler(error, {})

    assert response.status_code == status
    assert response.data["error"]["code"] == code
    if exc == "validation":
        assert response.data["error"]["fields"] == {"quantity": ["must be positive"]}


def test_openapi_schema_and_docs_are_served(client, db):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/marketdata/stocks/" in schema.content
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()  # assets are served locally (offline)


@pytest.mark.parametrize("path", ["/api/watchlists/order", "/api/paper-trading/orders"])
def test_a_form_over_the_field_limit_is_a_400_for_a_session_user(client, django_user_model, path):
    """The CSRF check of a session user reads the form first; over DATA_UPLOAD_MAX_NUMBER_FIELDS that read fails and
    the view's later read of the body must still answer a coded 400, never a 500."""
    from django.conf import settings

    user = django_user_model.objects.create_user("formflood", password="pw-formflood-1")
    client.force_login(user)
    body = "&".join(f"ids={i}" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 5))
    response = client.post(path, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 403), response.content
    assert response.json()["error"]["code"] in ("body_too_large", "malformed_body", "csrf_failed", "permission_denied")
