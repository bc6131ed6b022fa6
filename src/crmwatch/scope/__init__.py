"""Scope: from an incident's data-access events to the customers and fields they exposed."""
