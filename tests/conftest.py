"""Shared fixtures: real PostgreSQL and real Temporal, started once per session."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.temporal",
    "tests.fixtures.stack",
]

# Import schemathesis's lazily loaded generation module now, at collection time: loaded
# later from deep inside a running test, pytest's assertion rewriter parses it on a deep
# stack, where CPython 3.11.7 can fail with "AST constructor recursion depth mismatch".
import schemathesis.generation.jsonschema.strategy  # noqa: E402, F401
