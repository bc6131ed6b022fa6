"""SOQL parsing of the SELECT list and FROM object."""

from __future__ import annotations

import pytest

from crmwatch import soql


@pytest.mark.parametrize(("query", "obj", "fields", "count_only"), [
    ("SELECT COUNT() FROM Account", "Account", [], True),
    ("SELECT Id, Name, Email, Account.Name, MailingAddress FROM Contact WHERE MailingCountry = "
     "'KR' AND CreatedDate > 2024-01-01T00:00:00Z LIMIT 10", "Contact",
     ["Id", "Name", "Email", "Account.Name", "MailingAddress"], False),
    ("select FIELDS(ALL) from Case limit 200", "Case", ["FIELDS(ALL)"], False),
    ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "Account", ["Id"], False),
    ("SELECT Id, Username, Email FROM User LIMIT 20", "User", ["Id", "Username", "Email"], False),
])  # fmt: skip
def test_parse(query, obj, fields, count_only):
    q = soql.parse(query)
    assert (q.object, q.field_names, q.count_only) == (obj, fields, count_only)


@pytest.mark.parametrize(
    "bad", ["", "SELECT FROM Contact", "SELECT Id Contact", "DELETE x", "SELECT Id FROM"]
)
def test_unparseable_queries_raise_or_return_none(bad):
    with pytest.raises(soql.SoqlError):
        soql.parse(bad)
    assert soql.query_object(bad) is None
