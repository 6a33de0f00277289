"""Integration tests against real chat servers."""
