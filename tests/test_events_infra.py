"""Infra for events: the operator picks the delivery schema; the app knows its own principal."""

from __future__ import annotations

from shared.settings import Settings
from tests.conftest import base_settings
from tests.test_infra_bicep import INFRA, Bicep, _tree

SCHEMAS = ["EventGridSchema", "CloudEventSchemaV1_0"]


def _allowed(spec: dict[str, object]) -> object:
    decorators = spec.get("decorators") or []
    return next(d["argument"] for d in decorators if d["type"] == "allowed")  # type: ignore[index]


def test_the_delivery_schema_is_a_parameter_passed_to_every_event_subscription() -> None:
    events = _tree(INFRA / "events.bicep")
    spec = events["parameters"]["eventDeliverySchema"]
    assert (spec["default"], _allowed(spec)) == ("EventGridSchema", SCHEMAS)
    params = events["modules"]["subscriptions"]["config"]["config"]["params"]
    assert params["eventDeliverySchema"] == "eventDeliverySchema"

    path = INFRA / "app" / "events-subscription.bicep"
    spec = _tree(path)["parameters"]["eventDeliverySchema"]
    assert (spec["default"], _allowed(spec)) == ("EventGridSchema", SCHEMAS)
    for schema in SCHEMAS:
        sub = Bicep(path, eventDeliverySchema=schema)
        props = sub.tree["resources"]["vmEvents"]["config"]["properties"]
        assert sub.evaluate(props["eventDeliverySchema"]) == schema


def test_the_app_is_told_its_own_principal_from_its_identity() -> None:
    settings = Bicep(INFRA / "main.bicep").tree["variables"]["appSettings"]["value"]
    principal = settings["LIFEBOAT_PRINCIPAL_ID"]
    assert principal["operator"]["operands"]["operand_1"] == "identity"
    assert "principalId" in str(principal["operator"]["operands"]["operand_2"])
    oid = "5b0a7c1e-0000-4000-8000-00000000f00d"
    parsed = Settings.from_env(base_settings(LIFEBOAT_PRINCIPAL_ID=oid.upper()))
    assert str(parsed.lifeboat_principal_id) == oid
    assert Settings.from_env(base_settings(LIFEBOAT_PRINCIPAL_ID="")).lifeboat_principal_id is None
