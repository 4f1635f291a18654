"""Temporal activities: thin, each runs domain commands through the command bus.

Every command an activity runs carries the idempotency key
``f"{workflow_id}:{activity_id}"``, so a retried or re-delivered activity changes
nothing twice. Activities are methods of classes that receive their resources in
``__init__``; the worker constructs them (``workflows.worker``).
"""
