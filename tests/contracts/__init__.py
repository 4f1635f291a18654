"""Reusable contracts: one per port, run against every implementation."""
