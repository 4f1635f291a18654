"""The clinic's aggregates: each guards its invariants and records events."""

from domain.aggregates.appointment import Appointment
from domain.aggregates.clinic import Clinic
from domain.aggregates.consent import Consent
from domain.aggregates.doctor_day import DoctorDay
from domain.aggregates.lead import Lead
from domain.aggregates.message import Conversation, Message
from domain.aggregates.patient import Patient

__all__ = [
    "Appointment",
    "Clinic",
    "Consent",
    "Conversation",
    "DoctorDay",
    "Lead",
    "Message",
    "Patient",
]
