"""Tokens for the connectors: OAuth 2.0 flows that sign a JWT with the app's private key.

- Salesforce JWT bearer flow (RFC 7523 §2.1): ``iss`` the connected app's consumer key,
  ``sub`` the integration user, ``aud`` the login host, ``exp`` at most three minutes out;
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``.
- Salesforce client-credentials flow: consumer key and secret, the run-as user set on the app.
- Okta service app: client credentials with ``private_key_jwt`` client authentication
  (RFC 7523 §2.2): ``iss`` = ``sub`` = client id, ``aud`` the token endpoint, scope
  ``okta.logs.read``.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlencode

import jwt

from crmwatch.connectors.http import ConnectorError, Http

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def signed(claims: dict, private_key_pem: str, what: str) -> str:
    try:
        return jwt.encode(claims, private_key_pem, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as e:
        raise ConnectorError(f"{what}: the private key cannot sign a token ({e})") from e


def token(http: Http, path: str, form: dict[str, str]) -> dict:
    """POST a token request; the answer's JSON (``access_token``, ``instance_url``…)."""
    resp = http.request(
        "POST",
        path,
        urlencode(form).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    body = resp.json(f"{http.name} token")
    if not isinstance(body, dict) or not body.get("access_token"):
        raise ConnectorError(f"{http.name}: the token endpoint gave no access_token")
    return body


def salesforce_jwt(client_id: str, username: str, audience: str, key: str) -> dict[str, str]:
    claims = {"iss": client_id, "sub": username, "aud": audience, "exp": int(time.time()) + 180}
    return {"grant_type": JWT_BEARER, "assertion": signed(claims, key, "salesforce")}


def okta_private_key_jwt(client_id: str, token_url: str, key: str) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    return {
        "grant_type": "client_credentials",
        "scope": "okta.logs.read",
        "client_assertion_type": CLIENT_ASSERTION,
        "client_assertion": signed(claims, key, "okta"),
    }
