"""User-agent → class: browser, mobile-app, salesforce-tool, script or unknown.

``mobile-app`` is the Salesforce mobile app, whose user agent starts with the Mobile SDK's
own token (forcedotcom/SalesforceMobileSDK-iOS, SalesforceSDKManager: ``SalesforceMobileSDK/
<version> <os>/<version> (<model>) <app>/<version> Native uid_… ftr_… <web view agent>``):
a person's phone, not a script, although it reads through the REST API.

The attacker-known strings come from the 2025 Salesforce campaigns: ``Salesforce-Multi-Org-
Fetcher/1.0`` and ``Salesforce-CLI/1.0`` (UNC6395, Gainsight), ``python-requests/2.32.4`` and
``Python/3.11 aiohttp/3.12.15`` (GTIG, Unit 42); see docs/sources.md. LoginHistory and
LoginEvent report a browser *name* ("Chrome 120", "Python Requests") rather than a raw
user-agent; the patterns accept both.
"""

from __future__ import annotations

import re

# First match wins: the mobile app first (its web view part claims to be a browser), tools
# before scripts (Data Loader's UA names its Java runtime), scripts before browsers (some
# scripts claim "Mozilla/5.0").
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (cls, re.compile(p, re.IGNORECASE))
    for cls, p in (
        ("mobile-app", r"^SalesforceMobileSDK/|\bSalesforce1/|^Salesforce for (iOS|Android)\b"),
        (
            "salesforce-tool",
            r"Salesforce-Multi-Org-Fetcher|Salesforce-CLI|sfdx|@salesforce/cli"
            r"|\bsf-cli\b|Data\s?Loader|dataloader|Workbench|ForceCLI|force\.com-cli",
        ),
        (
            "script",
            r"python-requests|python-urllib|Python Requests|aiohttp|\bPython/\d|httpx"
            r"|\bcurl/|\bWget/|Go-http-client|okhttp|Apache-HttpClient|\bJava/\d"
            r"|node-fetch|axios/|PostmanRuntime|libwww-perl|PowerShell|\bRuby\b"
            r"|Scrapy|HeadlessChrome",
        ),
        (
            "browser",
            r"Mozilla/\d.*(Chrome|Firefox|Safari|Edg|OPR|Trident)"
            r"|^(Chrome|Firefox|Safari|Edge|Microsoft Edge|Opera|Mobile Safari"
            r"|Chrome Mobile|Samsung Internet)\b",
        ),
    )
)


def classify_user_agent(user_agent: str | None) -> str:
    if not user_agent:
        return "unknown"
    for cls, pattern in PATTERNS:
        if pattern.search(user_agent):
            return cls
    return "unknown"
