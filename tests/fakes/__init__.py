"""Fake third-party servers speaking each wire protocol (360dialog, HubSpot, Anthropic).

Each is a real HTTP server on 127.0.0.1 and a free port, started in a background
thread: ``with Fake360Dialog() as fake: ... fake.url ...``. See ``server.py``.
"""

from tests.fakes.fake_360dialog import (
    Fake360Dialog,
    cloud_webhook,
    contact,
    sign_webhook,
    status_update,
    text_message,
    webhook_body,
)
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_hubspot import FakeHubSpot
from tests.fakes.server import FakeServer, RecordedRequest, Scripted

__all__ = [
    "Fake360Dialog",
    "FakeAnthropic",
    "FakeHubSpot",
    "FakeServer",
    "RecordedRequest",
    "Scripted",
    "cloud_webhook",
    "contact",
    "sign_webhook",
    "status_update",
    "text_message",
    "webhook_body",
]
