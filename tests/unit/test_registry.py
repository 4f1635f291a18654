"""The registry: twelve functions declared once, validation that names what is wrong."""

from __future__ import annotations

import inspect

import pytest

from domain.errors import FunctionNotFound, InvalidArguments
from domain.functions import (
    REGISTRY,
    Arguments,
    FunctionContext,
    Registry,
    Result,
    appointments,
    leads,
    messaging,
    patients,
    workflows,
)
from domain.functions.schemas import Catalogue

EXPECTED = {
    # name: (category, scopes, side effect)
    "score_lead": ("leads", {"write"}, "write"),
    "get_patient": ("patients", {"read"}, "read"),
    "update_patient": ("patients", {"write"}, "write"),
    "schedule_appointment": ("appointments", {"write", "read"}, "write"),
    "get_available_slots": ("appointments", {"read"}, "read"),
    "cancel_appointment": ("appointments", {"write"}, "destructive"),
    "send_whatsapp": ("messaging", {"messaging", "read"}, "outbound"),
    "record_consent": ("consent", {"consent"}, "write"),
    "check_consent": ("consent", {"read"}, "read"),
    "get_lead_analytics": ("analytics", {"read"}, "read"),
    "trigger_workflow": ("workflows", {"write"}, "write"),
    "get_workflow_status": ("workflows", {"read"}, "read"),
}


def test_the_twelve_functions_are_declared_once_in_domain_order():
    assert REGISTRY.names() == list(EXPECTED)
    for spec in REGISTRY:
        category, scopes, side_effect = EXPECTED[spec.name]
        assert (spec.category, set(spec.scopes), spec.side_effect) == (
            category,
            scopes,
            side_effect,
        )


def test_declaring_a_name_twice_is_refused():
    registry = Registry()
    registry.add(REGISTRY.get("get_patient"))
    with pytest.raises(ValueError, match="declared twice"):
        registry.add(REGISTRY.get("get_patient"))


def test_the_decorator_returns_the_handler_unchanged():
    for module, name in [
        (leads, "score_lead"),
        (patients, "get_patient"),
        (appointments, "schedule_appointment"),
        (messaging, "send_whatsapp"),
        (workflows, "trigger_workflow"),
    ]:
        fn = getattr(module, name)
        assert REGISTRY.get(name).handler is fn
        assert inspect.iscoroutinefunction(fn)


def test_name_description_and_models_come_from_the_handler():
    spec = REGISTRY.get("get_patient")
    assert spec.description == inspect.getdoc(patients.get_patient)
    assert spec.arguments is patients.GetPatientArgs
    assert spec.result is patients.GetPatientResult
    assert spec.summary.startswith("Look a patient up")


def test_a_handler_without_typed_models_is_refused():
    registry = Registry()

    async def untyped(args, ctx):  # type: ignore[no-untyped-def]
        """Doc."""

    with pytest.raises(TypeError, match="Arguments model"):
        registry.function(category="leads", scopes={"read"}, side_effect="read")(untyped)

    class Args(Arguments):
        x: int

    def sync(args: Args, ctx: FunctionContext) -> Result:
        """Doc."""
        raise AssertionError

    with pytest.raises(TypeError, match="async"):
        registry.function(category="leads", scopes={"read"}, side_effect="read")(sync)  # type: ignore[type-var]


def test_every_function_has_examples_that_validate():
    for spec in REGISTRY:
        assert spec.examples, f"{spec.name} has no example"
        for example in spec.examples:
            spec.validate(example.arguments)


def test_every_argument_and_result_field_is_camel_case_on_the_wire():
    catalogue = Catalogue.build(REGISTRY)
    for name, doc in catalogue.docs.items():
        for schema in (doc["parameters"], doc["returns"]):
            for field_name in _property_names(schema):
                assert "_" not in field_name, f"{name}: {field_name}"


def _property_names(node: object) -> list[str]:
    if isinstance(node, dict):
        names = list(node.get("properties", {})) if isinstance(node.get("properties"), dict) else []
        return names + [n for v in node.values() for n in _property_names(v)]
    if isinstance(node, list):
        return [n for v in node for n in _property_names(v)]
    return []


# --- lookup -------------------------------------------------------------------------------


def test_an_unknown_name_suggests_the_nearest_and_lists_all():
    with pytest.raises(FunctionNotFound) as caught:
        REGISTRY.get("schedule_apointment")
    details = caught.value.details
    assert details["suggestions"][0] == "schedule_appointment"
    assert details["available"] == REGISTRY.names()
    assert caught.value.code == "FUNCTION_NOT_FOUND"


def test_scopes_admin_covers_everything():
    spec = REGISTRY.get("send_whatsapp")
    assert spec.allowed({"messaging", "read"}) and spec.allowed({"admin"})
    assert not spec.allowed({"read", "write"}) and not spec.allowed({"messaging"})
    assert spec.missing_scopes({"read"}) == ["messaging"]
    assert [s.name for s in REGISTRY.allowed({"read"})] == [
        "get_patient",
        "get_available_slots",
        "check_consent",
        "get_lead_analytics",
        "get_workflow_status",
    ]


# --- validation ---------------------------------------------------------------------------


def _errors(name: str, arguments: object) -> list[dict[str, str]]:
    with pytest.raises(InvalidArguments) as caught:
        REGISTRY.get(name).validate(arguments)  # type: ignore[arg-type]
    assert caught.value.code == "INVALID_ARGUMENTS"
    return caught.value.details["errors"]


def test_missing_required_arguments_are_named_with_what_is_expected():
    errors = _errors("schedule_appointment", {"patientId": "pat-1"})
    by_path = {e["path"]: e for e in errors}
    assert set(by_path) == {"serviceType", "preferredDate"}
    assert by_path["preferredDate"]["message"] == "required"
    assert by_path["preferredDate"]["expected"].startswith("a date, YYYY-MM-DD")
    assert "cleaning" in by_path["serviceType"]["expected"]


def test_nested_errors_carry_json_paths():
    long_text = "x" * 2001
    errors = _errors(
        "score_lead",
        {
            "phone": "0721234567",
            "channel": "fax",
            "messages": [{"role": "user", "content": "ok"}, {"role": "bot", "content": long_text}],
        },
    )
    paths = {e["path"]: e for e in errors}
    assert set(paths) == {"channel", "messages[1].role", "messages[1].content"}
    assert paths["channel"]["expected"].startswith("one of: whatsapp, voice, web, referral")
    assert paths["messages[1].content"]["expected"].startswith("a string of at most 2000")


def test_an_unknown_argument_is_named_with_the_known_ones():
    (error,) = _errors("get_patient", {"patientId": "p1", "patient": "x"})
    assert error["path"] == "patient"
    assert error["message"] == "unknown argument"
    assert "patientId" in error["expected"] and "email" in error["expected"]


def test_bad_nested_update_fields_are_named():
    errors = _errors("update_patient", {"patientId": "p1", "updates": {"email": "nope"}})
    assert [e["path"] for e in errors] == ["updates.email"]


def test_one_of_groups_are_named_like_the_intent_detector_names_them():
    (error,) = _errors("get_patient", {})
    assert error["path"] == "patientId|phone|email"
    assert error["expected"] == "at least one of patientId, phone, email"
    (error,) = _errors("update_patient", {"patientId": "p1", "updates": {}})
    assert error["path"].startswith("updates.firstName|lastName")


def test_a_message_and_a_template_together_are_refused():
    (error,) = _errors(
        "send_whatsapp", {"to": "0721234567", "message": "hi", "templateName": "recall_reminder"}
    )
    assert error["path"] == "message|templateName"
    assert error["expected"] == "only one of message, templateName"


def test_arguments_must_be_an_object():
    (error,) = _errors("get_patient", ["p1"])
    assert error == {"path": "", "message": "not an object", "expected": "a JSON object"}


@pytest.mark.parametrize("raw", ["0721 234 567", "0040721234567", "+40 721-234-567", "40721234567"])
def test_romanian_phone_forms_are_normalised_to_e164(raw: str):
    args = REGISTRY.get("score_lead").validate({"phone": raw, "channel": "web"})
    assert args.phone == "+40721234567"  # type: ignore[attr-defined]


def test_a_bad_phone_says_what_a_phone_looks_like():
    (error,) = _errors("get_patient", {"phone": "12"})
    assert error["path"] == "phone"
    assert "phone number" in error["message"]
    assert "E.164" in error["expected"]


def test_null_means_not_given_and_defaults_apply():
    args = REGISTRY.get("cancel_appointment").validate(
        {"appointmentId": "apt-1", "reason": None, "notifyPatient": None}
    )
    assert args.model_dump(by_alias=True) == {
        "appointmentId": "apt-1",
        "reason": None,
        "notifyPatient": True,
    }


def test_free_form_objects_may_come_as_json_strings():
    spec = REGISTRY.get("trigger_workflow")
    args = spec.validate({"workflow": "patient-journey", "payload": '{"patientId": "p1"}'})
    assert args.payload == {"patientId": "p1"}  # type: ignore[attr-defined]
    (error,) = _errors("trigger_workflow", {"workflow": "patient-journey", "payload": "{oops"})
    assert error["path"] == "payload" and "JSON" in error["message"]
