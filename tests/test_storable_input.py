"""Text PostgreSQL cannot store (a NUL, a lone surrogate) and nulls where a value must be:
a 400 naming the field on every API operation, a form error on every admin form field, and
never a 500."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.forms import JSONField
from django.test import RequestFactory
from drf_spectacular.generators import SchemaGenerator

from customfields.models import CustomField
from referrals.storable import unstorable_path
from tests.factories import make_api_delivery
from tests.two_factor import TwoStepClient as BrowserClient

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

NUL = "a\x00b"
# A value of each JSON type, each carrying a NUL somewhere inside.
NUL_VALUES = (NUL, [{"name": "x", "value": NUL}])


def _body_operations():
    """(path, method, request body properties) of every documented operation with a body."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema")
            if body is None:
                continue
            if "$ref" in body:
                body = components[body["$ref"].rsplit("/", 1)[1]]
            if "items" in body and "$ref" in body["items"]:
                body = components[body["items"]["$ref"].rsplit("/", 1)[1]]
            yield path, method, sorted(body.get("properties", {}))


def _named(response, field: str) -> bool:
    body = response.json()
    if isinstance(body, dict) and field in body:
        return True
    # Ingestion answers per record: {"results": [{"errors": [{"field": ...}]}]}.
    results = body.get("results", []) if isinstance(body, dict) else []
    return any(error["field"] == field for r in results for error in r.get("errors", []))


@pytest.fixture
def ids(client_a):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    field = CustomField.objects.create(
        client=client_a, name="shout", kind="case", source="first_name", case="upper"
    )
    return {"delivery": delivery.pk, "field": field.pk}


def test_every_body_field_refuses_text_that_cannot_be_stored(manager_api, ids):
    operations = list(_body_operations())
    assert len(operations) > 10  # the walk found the API
    manager_api.raise_request_exception = False
    for path, method, fields in operations:
        url = path.replace("{id}", str(ids["field" if "custom-fields" in path else "delivery"]))
        for field in fields:
            for value in NUL_VALUES:
                response = getattr(manager_api, method)(url, {field: value}, format="json")
                assert response.status_code == 400, (method, url, field, value)
                assert _named(response, field), (method, url, field, response.json())


def test_every_body_field_given_null_is_refused_or_stored(manager_api, ids):
    manager_api.raise_request_exception = False
    for path, method, fields in _body_operations():
        url = path.replace("{id}", str(ids["field" if "custom-fields" in path else "delivery"]))
        for field in fields:
            response = getattr(manager_api, method)(url, {field: None}, format="json")
            assert response.status_code < 500, (method, url, field)


def test_a_null_json_setting_is_refused_naming_it(manager_api, ids):
    field = manager_api.get(f"/api/v1/custom-fields/{ids['field']}/").json()
    body = {name: value for name, value in field.items() if name not in ("id", "created_at",
                                                                       "updated_at")}  # fmt: skip
    response = manager_api.put(
        f"/api/v1/custom-fields/{ids['field']}/", {**body, "rules": None}, format="json"
    )
    assert response.status_code == 400
    assert "rules" in response.json()
    response = manager_api.patch(
        f"/api/v1/deliveries/{ids['delivery']}/", {"kind": "api", "headers": None}, format="json"
    )
    assert response.status_code == 400
    assert "headers" in response.json()


@pytest.mark.parametrize(
    "url",
    ["/api/v1/deliveries/?client=a%00", "/api/v1/custom-fields/?client=a%00",
     "/api/v1/referrals/?client=a%00", "/api/v1/referrals/?campaign=a%00"],
)  # fmt: skip
def test_a_filter_holding_a_nul_is_refused_naming_it(manager_api, url):
    manager_api.raise_request_exception = False
    response = manager_api.get(url)
    assert response.status_code == 400
    assert url.split("?")[1].split("=")[0] in response.json()


def _admin_forms(request):
    for model, model_admin in admin.site._registry.items():
        yield model, model_admin.get_form(request)()
        for inline in model_admin.get_inline_instances(request):
            yield model, inline.get_formset(request).form()


def test_every_admin_form_field_refuses_text_that_cannot_be_stored(manager):
    from django.core.exceptions import ValidationError

    request = RequestFactory().get("/admin/")
    request.user = manager
    checked = 0
    for model, form in _admin_forms(request):
        for name, field in form.fields.items():
            value = '{"name": "a\\u0000b"}' if isinstance(field, JSONField) else NUL
            try:
                cleaned = field.clean(value)
            except ValidationError:
                checked += 1
                continue
            assert unstorable_path(cleaned) is None, (model, name, cleaned)
    assert checked > 20


def test_admin_filters_and_autocomplete_holding_a_nul_answer_without_error(manager, client_a):
    browser = BrowserClient(raise_request_exception=False)
    browser.force_login(manager)
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        response = browser.get(f"{url}?q=a%00&name__exact=a%00", follow=True)
        assert response.status_code in (200, 403), url  # 403: not an account manager's page
    response = browser.get(
        "/admin/autocomplete/?term=a%00&app_label=deliveries&model_name=delivery"
        "&field_name=campaigns"
    )
    assert response.status_code == 200
    assert response.json()["results"] == []
