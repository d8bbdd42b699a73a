"""Reusable network layers (StRA attention lives here)."""
