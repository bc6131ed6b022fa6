"""Notify: per-jurisdiction obligations, deadlines, regulator drafts and customer letters,
built from an incident's scope and the jurisdiction rules in ``jurisdictions/*.yaml``."""
