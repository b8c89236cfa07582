import pytest
from django.contrib.staticfiles import finders
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from distribution.demo import seed_demo

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "/api/operators/": {"get", "post"},
    "/api/operators/{id}/": {"get", "put", "patch", "delete"},
    "/api/operators/{id}/shifts/": {"get", "put"},
    "/api/events/": {"get"},
    "/api/me/": {"get", "patch"},
    "/api/me/contacts/": {"get"},
    "/api/sources/": {"get", "post"},
    "/api/sources/{id}/": {"get", "put", "patch", "delete"},
    "/api/sources/{id}/operators/": {"get", "put"},
    "/api/sources/{id}/overflow/": {"get", "put"},
    "/api/leads/": {"get"},
    "/api/leads/{id}/": {"get"},
    "/api/contacts/": {"get", "post"},
    "/api/contacts/{id}/": {"get"},
    "/api/contacts/{id}/close/": {"post"},
    "/api/contacts/{id}/accept/": {"post"},
    "/api/contacts/{id}/decline/": {"post"},
    "/api/contacts/{id}/reassign/": {"post"},
    "/api/contacts/{id}/history/": {"get"},
    "/api/stats/distribution/": {"get"},
    "/api/webhooks/": {"get", "post"},
    "/api/webhooks/{id}/": {"get", "put", "patch", "delete"},
}


@pytest.fixture
def schema() -> dict:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_public_valid_openapi_with_every_endpoint(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    assert {path: set(operations) for path, operations in schema["paths"].items()} == ENDPOINTS


def test_a_stale_key_does_not_lock_the_schema(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer 0123456789ab.revoked")

    assert client.get("/api/schema/").status_code == 200


def test_the_schema_documents_the_error_shapes(schema):
    close = schema["paths"]["/api/contacts/{id}/close/"]["post"]
    create = schema["paths"]["/api/contacts/"]["post"]

    assert set(close["responses"]) == {"200", "401", "403", "404", "409", "503"}
    assert "requestBody" not in close
    intake_answers = {"200", "201", "400", "401", "403", "409", "413", "429", "503"}
    assert set(create["responses"]) == intake_answers
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail"]


def test_the_schema_documents_request_bodies(schema):
    components = schema["components"]["schemas"]
    weights = schema["paths"]["/api/sources/{id}/operators/"]["put"]["requestBody"]
    intake = components["ContactCreateRequest"]

    assert weights["content"]["application/json"]["schema"]["type"] == "array"
    assert components["WeightInputRequest"]["properties"]["weight"]["minimum"] == 1
    # A bot may leave out its source; everyone must describe the lead.
    assert intake["required"] == ["lead"]
    assert intake["properties"]["payload"]["type"] == "object"
    assert "open_contacts" not in components["OperatorRequest"]["properties"]


def test_only_the_endpoints_bots_may_call_offer_the_bearer_scheme(schema):
    bearer = {
        f"{method} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if {"sourceKey": []} in operation.get("security", [])
    }

    assert bearer == {
        "get /api/contacts/",
        "post /api/contacts/",
        "get /api/contacts/{id}/",
        "get /api/events/",
    }
    assert schema["components"]["securitySchemes"]["sourceKey"] == {
        "type": "http",
        "scheme": "bearer",
    }


def test_swagger_ui_is_served_from_local_static_files(db):
    response = APIClient().get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn." not in page
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_an_unknown_api_url_is_404_in_the_error_shape(api):
    response = api.get("/api/nothing/here/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_the_intakes_example_works_against_the_demo_data(schema, api):
    """Swagger's "Try it out" sends the example: on the demo's data it must be a 201."""
    seed_demo()
    content = schema["paths"]["/api/contacts/"]["post"]["requestBody"]["content"]
    [example] = content["application/json"]["examples"].values()

    response = api.post("/api/contacts/", example["value"], format="json")

    assert response.status_code == 201, response.data
