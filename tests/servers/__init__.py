"""Launchers for real chat servers used by the integration tests."""
