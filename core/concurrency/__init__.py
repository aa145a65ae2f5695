"""Sharing one process between browser sessions: work loaded in the background, turns at shared models."""
