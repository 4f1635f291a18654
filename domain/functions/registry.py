"""The gateway's declaration mechanism: each function is a typed async handler.

A gateway function is written once, as::

    @gateway_function(category="patients", scopes={"read"}, side_effect="read",
                      examples=[Example("By phone", {"phone": "0721 234 567"})])
    async def get_patient(args: GetPatientArgs, ctx: FunctionContext) -> GetPatientResult:
        \"\"\"Docstring an LLM reads: what it does, when to use it.\"\"\"

The decorator returns the function unchanged (it stays directly testable) and
records a :class:`FunctionSpec`: name (the function's), description (its
docstring), argument and result models (its annotations), category, required
scopes and side-effect class. Every other view (JSON Schema, OpenAI, Anthropic and
MCP tools, ``/ai/functions``, validation) is derived from that spec in
``domain.functions.schemas``. Pure: pydantic and the standard library only.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from domain.errors import Forbidden, FunctionNotFound, InvalidArguments
from domain.text import nul_path

if TYPE_CHECKING:
    from domain.functions.context import FunctionContext

Category = Literal[
    "leads", "patients", "appointments", "messaging", "consent", "analytics", "workflows"
]
CATEGORIES: dict[str, str] = {
    "leads": "Score and qualify people who contacted the clinic.",
    "patients": "Look up and update patient records.",
    "appointments": "Find free slots, book and cancel appointments.",
    "messaging": "Send WhatsApp messages (consent-gated, through the outbox).",
    "consent": "Record and check GDPR consent.",
    "analytics": "Lead and clinic figures from the read models.",
    "workflows": "Start durable workflows and follow their progress.",
}
Scope = Literal["read", "write", "messaging", "consent", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "messaging", "consent", "admin")
SideEffect = Literal["read", "write", "outbound", "destructive"]
ADMIN: Scope = "admin"


def decode_json_object(value: Any) -> Any:
    """Accept a JSON object written as a string (how OpenAI strict mode sends free-form maps)."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PydanticCustomError(
                "json_object", "not a JSON object: {error}", {"error": str(exc)}
            ) from exc
        return decoded
    return value


JsonObject = Annotated[dict[str, Any], BeforeValidator(decode_json_object)]
"""A free-form object; also accepted as a JSON string (strict tool schemas cannot hold maps)."""
StringMap = Annotated[dict[str, str], BeforeValidator(decode_json_object)]
"""Names to strings; also accepted as a JSON string."""


class Arguments(BaseModel):
    """Base of argument models: camelCase on the wire, closed, ``null`` = left out.

    ``one_of`` lists groups of fields of which at least one must be given
    (``get_patient`` needs a patientId, a phone or an email); ``at_most_one``
    groups of which no two may be given together.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()
    at_most_one: ClassVar[tuple[tuple[str, ...], ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        # Strict tool schemas make every property required and nullable: null is "not given".
        if isinstance(data, Mapping):
            bad = nul_path(dict(data))
            if bad:
                raise PydanticCustomError(
                    "nul_character", "{path} may not contain NUL (U+0000)", {"path": bad}
                )
            return {k: v for k, v in data.items() if v is not None}
        return data

    @model_validator(mode="after")
    def _groups(self) -> Arguments:
        for group in self.one_of:
            if all(getattr(self, name) is None for name in group):
                raise PydanticCustomError(
                    "one_of_missing", "give at least one of {names}", {"names": _names(group)}
                )
        for group in self.at_most_one:
            if sum(getattr(self, name) is not None for name in group) > 1:
                raise PydanticCustomError(
                    "at_most_one", "give only one of {names}", {"names": _names(group)}
                )
        return self


def _names(group: tuple[str, ...]) -> str:
    return "|".join(to_camel(name) for name in group)


class Result(BaseModel):
    """Base of result models: camelCase on the wire; built from dicts, models or objects.

    A result model is the gateway's public contract: it names exactly what a caller
    sees, so a read model growing a field (an IP address, a position) never leaks it.
    """

    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, from_attributes=True
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready result as callers see it."""
        return self.model_dump(mode="json", by_alias=True)


Handler = Callable[[Any, "FunctionContext"], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class Example:
    """A worked call: what it does and valid arguments (validated by the unit tests)."""

    description: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    """Everything the gateway knows about one function, derived from its declaration."""

    name: str
    description: str
    handler: Handler
    arguments: type[Arguments]
    result: type[Result]
    category: Category
    scopes: frozenset[Scope]
    side_effect: SideEffect
    examples: tuple[Example, ...] = ()
    idempotent: bool = False
    open_world: bool = False

    @property
    def summary(self) -> str:
        """The docstring's first line."""
        return self.description.split("\n", 1)[0]

    @property
    def read_only(self) -> bool:
        return self.side_effect == "read"

    @property
    def destructive(self) -> bool:
        return self.side_effect == "destructive"

    def allowed(self, granted: Iterable[str]) -> bool:
        """True when ``granted`` scopes cover this function (``admin`` covers all)."""
        have = set(granted)
        return ADMIN in have or self.scopes <= have

    def missing_scopes(self, granted: Iterable[str]) -> list[str]:
        have = set(granted)
        return [] if ADMIN in have else sorted(self.scopes - have)

    def authorize(self, granted: Iterable[str]) -> None:
        """``Forbidden`` naming the missing scopes unless ``granted`` covers this function."""
        missing = self.missing_scopes(granted)
        if missing:
            raise Forbidden(
                f"{self.name} needs the scope(s) {', '.join(missing)}",
                function=self.name,
                required=sorted(self.scopes),
                missing=missing,
            )

    def validate(self, raw: Mapping[str, Any] | None) -> Arguments:
        """The arguments as the handler receives them; ``InvalidArguments`` otherwise."""
        if raw is not None and not isinstance(raw, Mapping):
            raise InvalidArguments(
                f"{self.name}: arguments must be an object",
                function=self.name,
                errors=[{"path": "", "message": "not an object", "expected": "a JSON object"}],
            )
        try:
            return self.arguments.model_validate(raw or {})
        except ValidationError as exc:
            errors = argument_errors(exc, self.arguments)
            raise InvalidArguments(
                f"{self.name}: invalid arguments: "
                + "; ".join(f"{e['path'] or '(arguments)'}: {e['message']}" for e in errors),
                function=self.name,
                errors=errors,
            ) from None

    async def run(self, args: Arguments, ctx: FunctionContext) -> Result:
        """Call the handler with validated arguments."""
        result = await self.handler(args, ctx)
        if not isinstance(result, self.result):
            raise TypeError(f"{self.name} returned {type(result).__name__}, not {self.result}")
        return result


def argument_errors(exc: ValidationError, model: type[BaseModel]) -> list[dict[str, Any]]:
    """Pydantic errors as ``{path, message, expected}`` with JSON paths an LLM can act on."""
    from domain.functions.schemas import describe_at  # derivations live beside the views

    out = []
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if _is_field(part)]
        path = _json_path(loc)
        if error["type"] in ("one_of_missing", "at_most_one"):
            names = str(error.get("ctx", {}).get("names", ""))
            path = f"{path}.{names}" if path else names
        out.append(
            {"path": path, "message": _message(error), "expected": describe_at(model, loc, error)}
        )
    return out


def _is_field(part: int | str) -> bool:
    # pydantic inserts union member tags ("list[str]", "function-after[...]") in locations
    return isinstance(part, int) or ("[" not in part and "(" not in part)


def _json_path(loc: list[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "missing":
        return "required"
    if error["type"] == "extra_forbidden":
        return "unknown argument"
    return str(error["msg"]).removeprefix("Value error, ")


class Registry:
    """The gateway's functions by name; ``function(...)`` declares one."""

    def __init__(self) -> None:
        self._specs: dict[str, FunctionSpec] = {}

    def function(
        self,
        *,
        category: Category,
        scopes: Iterable[Scope],
        side_effect: SideEffect,
        examples: Iterable[Example] = (),
        idempotent: bool | None = None,
        open_world: bool | None = None,
    ) -> Callable[[F], F]:
        """Declare the decorated handler as a gateway function; returns it unchanged.

        ``idempotent`` defaults to True for reads; ``open_world`` (it reaches people or
        systems outside the clinic's records) to True for outbound functions.
        """

        def declare(fn: F) -> F:
            arguments, result = _signature_models(fn)
            self.add(
                FunctionSpec(
                    name=fn.__name__,
                    description=inspect.getdoc(fn) or "",
                    handler=fn,
                    arguments=arguments,
                    result=result,
                    category=category,
                    scopes=frozenset(scopes),
                    side_effect=side_effect,
                    examples=tuple(examples),
                    idempotent=side_effect == "read" if idempotent is None else idempotent,
                    open_world=side_effect == "outbound" if open_world is None else open_world,
                )
            )
            return fn

        return declare

    def add(self, spec: FunctionSpec) -> None:
        """Register a spec; a name may be declared once. Kept in category order."""
        if spec.name in self._specs:
            raise ValueError(f"gateway function {spec.name!r} is declared twice")
        if not spec.description:
            raise ValueError(f"gateway function {spec.name!r} needs a docstring")
        if not spec.scopes:
            raise ValueError(f"gateway function {spec.name!r} needs at least one scope")
        specs = [*self._specs.values(), spec]
        order = list(CATEGORIES)
        specs.sort(key=lambda s: order.index(s.category))  # stable: declaration order within
        self._specs = {s.name: s for s in specs}

    def get(self, name: str) -> FunctionSpec:
        """The spec named ``name``; ``FunctionNotFound`` with the nearest names otherwise."""
        spec = self._specs.get(name)
        if spec is None:
            raise FunctionNotFound(
                f"no gateway function named {name!r}",
                function=name,
                suggestions=self.suggest(name),
                available=self.names(),
            )
        return spec

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """The declared names closest to ``name`` (difflib), best first."""
        return difflib.get_close_matches(str(name), self.names(), n=n, cutoff=0.5)

    def names(self) -> list[str]:
        return list(self._specs)

    @property
    def specs(self) -> Mapping[str, FunctionSpec]:
        """The specs by name (read-only)."""
        return MappingProxyType(self._specs)

    def categories(self) -> list[str]:
        """Categories that have functions, in declaration order of ``CATEGORIES``."""
        used = {spec.category for spec in self._specs.values()}
        return [c for c in CATEGORIES if c in used]

    def allowed(self, granted: Iterable[str]) -> list[FunctionSpec]:
        have = frozenset(granted)
        return [spec for spec in self._specs.values() if spec.allowed(have)]

    def __iter__(self) -> Iterator[FunctionSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    async def execute(
        self, name: str, arguments: Mapping[str, Any] | None, ctx: FunctionContext
    ) -> dict[str, Any]:
        """Authorise (the context's scopes), validate and run one call; JSON-ready result.

        Raises the domain's errors (``FunctionNotFound``, ``Forbidden``,
        ``InvalidArguments``, ``NotFound``, ``ConsentRequired`` ...) for the caller
        to report; this is what the AI-plan workflow's activity runs for each step.
        """
        spec = self.get(name)
        spec.authorize(ctx.scopes)
        args = spec.validate(arguments)
        return (await spec.run(args, ctx)).wire()


def _signature_models(fn: Callable[..., Any]) -> tuple[type[Arguments], type[Result]]:
    """``(argument model, result model)`` read from ``async def fn(args: X, ctx) -> Y``."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"gateway function {fn.__name__} must be async")
    hints = get_type_hints(fn)
    params = list(inspect.signature(fn).parameters)
    if len(params) != 2:
        raise TypeError(f"gateway function {fn.__name__} must take (args, ctx)")
    arguments, result = hints.get(params[0]), hints.get("return")
    if not (isinstance(arguments, type) and issubclass(arguments, Arguments)):
        raise TypeError(f"{fn.__name__}: the first parameter must be typed with an Arguments model")
    if not (isinstance(result, type) and issubclass(result, Result)):
        raise TypeError(f"{fn.__name__}: the return type must be a Result model")
    return arguments, result


REGISTRY = Registry()
"""The twelve gateway functions (populated when ``domain.functions`` is imported)."""

gateway_function = REGISTRY.function
"""Declare a gateway function in :data:`REGISTRY` (see :meth:`Registry.function`)."""
