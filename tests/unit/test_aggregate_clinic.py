"""Clinic configuration: validated hours and a doctor list."""

from __future__ import annotations

import pytest

from domain.aggregates import Clinic
from domain.errors import Conflict, InvalidArguments, NotFound
from domain.scheduling import ClinicHours, DoctorInfo
from tests.contracts.aggregate_contract import assert_aggregate_laws


def configured() -> Clinic:
    clinic = Clinic("clinic-1")
    clinic.configure(name="Dent Bucuresti")
    return clinic


def test_defaults_are_the_romanian_weekday_slots() -> None:
    clinic = configured()
    assert clinic.hours() == ClinicHours(
        "Europe/Bucharest", ("09:00", "10:30", "14:00", "15:30", "17:00"), (0, 1, 2, 3, 4)
    )


def test_configuration_is_normalised_and_recorded_only_on_change() -> None:
    clinic = Clinic("clinic-1")
    assert clinic.configure(
        name="Dent", slot_times=["14:00", "9:00", "09:00"], working_days=[5, 0, 0]
    )
    assert clinic.slot_times == ["09:00", "14:00"] and clinic.working_days == [0, 5]
    assert (
        clinic.configure(name="Dent", slot_times=["09:00", "14:00"], working_days=[0, 5]) is False
    )
    assert clinic.configure(name="Dent 2", slot_times=["09:00", "14:00"], working_days=[0, 5])
    assert len(clinic.pending_events) == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"slot_times": ["25:00"]},
        {"slot_times": ["nine"]},
        {"working_days": [7]},
        {"timezone": "Mars/Olympus"},
    ],
)
def test_bad_configuration_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArguments):
        Clinic("c").configure(name="Dent", **bad)  # type: ignore[arg-type]


def test_doctors_need_a_configured_clinic_and_unique_ids() -> None:
    with pytest.raises(NotFound):
        Clinic("c").add_doctor("d-1", "Dr Ana")
    clinic = configured()
    assert clinic.add_doctor("d-2", "Dr Ion", ["implant", "implant"]) is True
    assert clinic.add_doctor("d-1", "Dr Ana") is True
    assert clinic.add_doctor("d-1", "Dr Ana") is False
    with pytest.raises(Conflict):
        clinic.add_doctor("d-1", "Dr Other")
    assert clinic.doctor_infos() == [
        DoctorInfo("d-1", "Dr Ana", ()),
        DoctorInfo("d-2", "Dr Ion", ("implant",)),
    ]
    clinic.require_doctor("d-1")
    with pytest.raises(NotFound):
        clinic.require_doctor("d-9")


def test_clinic_state_rehydrates_and_snapshots() -> None:
    clinic = configured()
    clinic.add_doctor("d-1", "Dr Ana", ["cleaning"])
    assert_aggregate_laws(clinic, list(clinic.pending_events))
