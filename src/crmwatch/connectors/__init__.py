"""``crmwatch pull``: Salesforce and Okta logs fetched from their APIs into the same ingest
as files.

Each page or file an API returns is written to a spool folder beside the store (the raw
record, byte for byte, as the API sent it), ingested like any file, and only then is the
stream's checkpoint moved past it. A pull killed at any point and run again fetches the page
after the last checkpoint again; ingest's dedupe by native id (Okta ``uuid``,
``EventIdentifier``, a record's ``Id``, an EventLogFile row) makes that second landing add
nothing, so the store ends as if the pull had never stopped.
"""
