"""Responding to incidents: delivering them to the people and systems that act
(``deliver``, ``channels``), configured in crmwatch.toml's ``[alerts]`` (``settings``)."""
