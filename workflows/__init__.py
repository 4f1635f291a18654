"""Temporal workflows (AI plan, booking, the trigger_workflow catalogue) and the worker.

Workflow modules stay light for the sandbox: activities, payload models and domain
helpers are imported inside ``workflow.unsafe.imports_passed_through()``.
"""
