"""A patient's record: registered once, updated field by field, erasable (GDPR Art. 17)."""

from __future__ import annotations

from datetime import date
from typing import Any, Self

from domain.aggregate import Aggregate
from domain.aggregates._common import require_exists
from domain.errors import Conflict, NotFound
from domain.events import PatientErased, PatientRegistered, PatientUpdated

PROFILE_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "phone",
    "email",
    "date_of_birth",
    "notes",
    "tags",
)


def _json_value(name: str, value: Any) -> Any:
    """Profile values are kept JSON-ready so recorded and reloaded state are equal."""
    if isinstance(value, date):
        return value.isoformat()
    if name == "tags":
        return list(value or [])
    return value


class Patient(Aggregate):
    """A patient of the clinic; the profile is held in JSON-ready form."""

    stream_type = "patient"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.profile: dict[str, Any] = {name: _json_value(name, None) for name in PROFILE_FIELDS}
        self.lead_id: str | None = None
        self.erased = False

    @property
    def active(self) -> bool:
        """Registered and not erased."""
        return self.exists and not self.erased

    def register(self, *, lead_id: str | None = None, **profile: Any) -> None:
        """Record a new patient; a patient id is registered once."""
        if self.exists:
            raise Conflict("patient already registered", patientId=self.id)
        unknown = set(profile) - set(PROFILE_FIELDS)
        if unknown:
            raise TypeError(f"unknown profile fields: {sorted(unknown)}")
        self._record(PatientRegistered(patient_id=self.id, lead_id=lead_id, **profile))

    def update(self, updates: dict[str, Any]) -> dict[str, Any]:
        """Record only the fields whose value really changes; returns them (maybe empty)."""
        self.require_active()
        unknown = set(updates) - set(PROFILE_FIELDS)
        if unknown:
            raise TypeError(f"unknown profile fields: {sorted(unknown)}")
        changes = {
            name: _json_value(name, value)
            for name, value in updates.items()
            if _json_value(name, value) != self.profile[name]
        }
        if changes:
            self._record(PatientUpdated(patient_id=self.id, changes=changes))
        return changes

    def erase(self, requested_by: str, reason: str | None = None) -> bool:
        """Forget the person (their key is destroyed elsewhere); False when already erased."""
        require_exists(self, "patient")
        if self.erased:
            return False
        self._record(PatientErased(patient_id=self.id, requested_by=requested_by, reason=reason))
        return True

    def require_active(self) -> None:
        """Raise ``NotFound`` for an unknown or erased patient."""
        require_exists(self, "patient")
        if self.erased:
            raise NotFound(f"patient {self.id!r} was erased", id=self.id, erased=True)

    # --- state --------------------------------------------------------------------

    def when_PatientRegistered(self, e: PatientRegistered) -> None:
        self.profile = {name: _json_value(name, getattr(e, name)) for name in PROFILE_FIELDS}
        self.lead_id = e.lead_id

    def when_PatientUpdated(self, e: PatientUpdated) -> None:
        self.profile.update(e.changes)

    def when_PatientErased(self, e: PatientErased) -> None:
        self.profile = {name: _json_value(name, None) for name in PROFILE_FIELDS}
        self.erased = True

    def snapshot_state(self) -> dict[str, Any]:
        return {"profile": dict(self.profile), "lead_id": self.lead_id, "erased": self.erased}

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: dict[str, Any], version: int) -> Self:
        patient = cls(aggregate_id)
        patient.profile = dict(state["profile"])
        patient.lead_id = state.get("lead_id")
        patient.erased = bool(state.get("erased"))
        patient.version = version
        return patient
