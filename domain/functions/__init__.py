"""The AI gateway's twelve functions, each declared once (see ``registry``).

Importing this package declares them in :data:`REGISTRY`; every tool format and
schema is derived from those declarations (``schemas``).
"""

from domain.functions import (  # noqa: F401  (importing declares the functions)
    analytics,
    appointments,
    consent,
    leads,
    messaging,
    patients,
    workflows,
)
from domain.functions.context import FunctionContext
from domain.functions.registry import (
    CATEGORIES,
    REGISTRY,
    Arguments,
    Example,
    FunctionSpec,
    Registry,
    Result,
    gateway_function,
)

__all__ = [
    "CATEGORIES",
    "REGISTRY",
    "Arguments",
    "Example",
    "FunctionContext",
    "FunctionSpec",
    "Registry",
    "Result",
    "gateway_function",
]
