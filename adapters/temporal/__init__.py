"""Temporal plumbing: client, payload encryption, search attributes, the workflow gateway.

Every module here is import-light (no I/O at import): the workflow sandbox imports
the payload and plan modules through ``imports_passed_through``.
"""
