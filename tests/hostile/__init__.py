"""Hostile input: every bad input a clear error, every action contained (issue #13)."""
