"""Qala pipeline logic."""
