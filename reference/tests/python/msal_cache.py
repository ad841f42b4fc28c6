"""Makes and reads MSAL token caches with Python msal, for ../token_cache_interop.rs.

    msal_cache.py generate KIND OUTFILE
        Writes a cache made by msal's SerializableTokenCache.add() from fake token
        responses (no network). KIND:
          one-account        one user: AT, RT, IdToken, Account, AppMetadata, and one
                             app-only (client credentials) AT
          several-accounts   three users in two tenants, two clients
          large              users until the cache is at least 1 MiB
        Like a cache shared with other SDKs, it also gets an unknown top-level section
        and unknown fields on some entities (MSAL Node's fixture has
        "Unrecognized_Entity"; MSAL .NET keeps unknown fields).

    msal_cache.py search INFILE QUERIES_JSON
        Loads INFILE with SerializableTokenCache.deserialize and, for each query
        {"client_id", "scopes", "realm"?, "home_account_id"?}, prints the secrets of the
        access tokens msal's search() finds, as one JSON list of lists.

    msal_cache.py sign-in OUTFILE CLIENT_ID TENANT SCOPES_JSON
        Signs a user in the way a program using msal does: a real
        PublicClientApplication runs the device flow (initiate_device_flow, then
        acquire_token_by_device_flow) against the local mock authority below, and its
        cache is written to OUTFILE. Prints JSON: the account, the secrets issued, and
        the requests the authority saw.

    msal_cache.py silent INFILE OUTFILE CLIENT_ID TENANT SCOPES_JSON
        Loads INFILE into a PublicClientApplication, lists get_accounts() and calls
        acquire_token_silent(scopes, account=<first account>), against the local mock
        authority (which answers a refresh_token grant with new tokens). Writes the
        cache to OUTFILE and prints JSON: the accounts, the result (token and
        token_source) and the requests the authority saw.

    msal_cache.py for-client INFILE CLIENT_ID TENANT SCOPES_JSON
        Loads INFILE into a ConfidentialClientApplication and calls
        acquire_token_for_client(scopes): msal's own app-only cache lookup. Prints the
        same JSON as silent.

The mock authority: msal insists on https authorities and does OIDC discovery before
any lookup, so each application gets an http_client that sends every request for the
authority host (https://login.microsoftonline.com, or MSAL_CACHE_AUTHORITY) to a real
HTTP server on 127.0.0.1 run by this script (discovery, device code and token
endpoints), which records each request. A cache hit is then visible as zero token
requests.

Fake tokens look like "at-<n>-..." so tests can tell them apart; none is a real secret.
"""
import base64
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

import msal
import requests

# The authority host msal is given: login.microsoftonline.com, or, to match a credential
# of ours pointed at a mock authority on 127.0.0.1 (MSAL's `environment` is the host name
# without port), e.g. https://127.0.0.1:1 set in MSAL_CACHE_AUTHORITY. msal only accepts
# https authorities; Redirect below sends the requests to our HTTP server.
AUTHORITY = os.environ.get("MSAL_CACHE_AUTHORITY", "https://login.microsoftonline.com")
KNOWN_HOST = AUTHORITY == "https://login.microsoftonline.com"
# Lifetime of the access tokens the mock authority issues, e.g. 60 to have a credential
# that refreshes 5 minutes ahead redeem the refresh token at once.
EXPIRES_IN = int(os.environ.get("MSAL_CACHE_EXPIRES_IN", "3600"))


def b64(obj):
    raw = json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def id_token(uid, utid, username):
    claims = {"iss": "https://login.microsoftonline.com/%s/v2.0" % utid, "sub": uid,
              "aud": "client", "exp": int(time.time()) + 3600, "iat": int(time.time()),
              "oid": uid, "tid": utid, "preferred_username": username, "name": username}
    return "%s.%s.sig" % (b64({"alg": "none", "typ": "JWT"}), b64(claims))


def add_user(cache, n, client_id, tenant, scopes, pad=0):
    uid = "uid%04d" % n
    cache.add({
        "client_id": client_id,
        "scope": scopes,
        "token_endpoint": "%s/%s/oauth2/v2.0/token" % (AUTHORITY, tenant),
        "grant_type": "authorization_code",
        "data": {},
        "response": {
            "access_token": "at-%d-%s" % (n, "x" * pad),
            "refresh_token": "rt-%d-%s" % (n, "y" * pad),
            "id_token": id_token(uid, tenant, "user%d@example.com" % n),
            "client_info": b64({"uid": uid, "utid": tenant}),
            "expires_in": 3600,
            "token_type": "Bearer",
        },
    })


def add_app_only(cache, client_id, tenant, scopes):
    cache.add({
        "client_id": client_id,
        "scope": scopes,
        "token_endpoint": "%s/%s/oauth2/v2.0/token" % (AUTHORITY, tenant),
        "grant_type": "client_credentials",
        "data": {},
        "response": {"access_token": "at-app-%s" % client_id, "expires_in": 3600,
                     "token_type": "Bearer"},
    })


def foreign(state):
    """What other SDKs leave in a shared cache."""
    doc = json.loads(state)
    doc["Unrecognized_Entity"] = {"some-key": {"field": "value", "nested": {"a": [1, 2]}}}
    for section in ("AccessToken", "Account"):
        for entity in doc.get(section, {}).values():
            entity["x_foreign_field"] = "kept"
            entity["x_foreign_object"] = {"n": 1, "list": ["a", None, True]}
            break
    return json.dumps(doc, indent=4)


def generate(kind, out):
    cache = msal.SerializableTokenCache()
    scopes = ["https://graph.microsoft.com/User.Read", "offline_access"]
    if kind == "one-account":
        add_user(cache, 1, "client-a", "tenant-1", scopes)
        add_app_only(cache, "client-app", "tenant-1", ["https://vault.azure.net/.default"])
    elif kind == "several-accounts":
        add_user(cache, 1, "client-a", "tenant-1", scopes)
        add_user(cache, 2, "client-a", "tenant-2", scopes)
        add_user(cache, 3, "client-b", "tenant-1", ["https://management.azure.com/.default"])
        add_app_only(cache, "client-app", "tenant-1", ["https://vault.azure.net/.default"])
    elif kind == "large":
        n = 0
        while len(cache.serialize()) < (1 << 20):
            n += 1
            add_user(cache, n, "client-a", "tenant-%d" % (n % 7), scopes, pad=1500)
        add_app_only(cache, "client-app", "tenant-1", ["https://vault.azure.net/.default"])
    else:
        sys.exit("unknown kind " + kind)
    with open(out, "w") as f:
        f.write(foreign(cache.serialize()))


def search(infile, queries):
    cache = msal.SerializableTokenCache()
    with open(infile) as f:
        cache.deserialize(f.read())
    found = []
    for q in json.loads(queries):
        query = {"client_id": q["client_id"]}
        for field in ("realm", "home_account_id"):
            if field in q:
                query[field] = q[field]
        hits = cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN,
                            target=q["scopes"], query=query)
        found.append(sorted(at["secret"] for at in hits))
    print(json.dumps(found))


class MockAuthority(http.server.ThreadingHTTPServer):
    """login.microsoftonline.com on 127.0.0.1: discovery, device code, token."""

    def __init__(self, client_id, tenant):
        super().__init__(("127.0.0.1", 0), AuthorityHandler)
        self.client_id, self.tenant = client_id, tenant
        self.requests = []  # {"path", "grant_type"?, "refresh_token"?, ...}
        self.device_scope = ""
        # Who signs in, or whose refresh token is redeemed.
        self.user = {"uid": "uid-python-user", "username": "python.user@example.com"}
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def base(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def token_requests(self):
        return [r for r in self.requests if r["path"].endswith("/token")]


class AuthorityHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # Keep the test's stderr for failures
        pass

    def reply(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        server, path = self.server, urllib.parse.urlparse(self.path).path
        server.requests.append({"path": path})
        tenant_base = "%s/%s" % (AUTHORITY, server.tenant)
        if path.endswith("/.well-known/openid-configuration"):
            self.reply(200, {
                "issuer": tenant_base + "/v2.0",
                "authorization_endpoint": tenant_base + "/oauth2/v2.0/authorize",
                "token_endpoint": tenant_base + "/oauth2/v2.0/token",
                "device_authorization_endpoint": tenant_base + "/oauth2/v2.0/devicecode",
            })
        elif path.endswith("/discovery/instance"):
            self.reply(200, {
                "tenant_discovery_endpoint":
                    tenant_base + "/v2.0/.well-known/openid-configuration",
                "metadata": [{"preferred_network": "login.microsoftonline.com",
                              "preferred_cache": "login.windows.net",
                              "aliases": ["login.microsoftonline.com", "login.windows.net"]}],
            })
        else:
            self.reply(404, {"error": "not_found"})

    def do_POST(self):
        server, path = self.server, urllib.parse.urlparse(self.path).path
        length = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        record = {"path": path}
        for field in ("grant_type", "refresh_token", "client_id", "scope"):
            if field in form:
                record[field] = form[field]
        server.requests.append(record)
        if path.endswith("/devicecode"):
            server.device_scope = form.get("scope", "")
            self.reply(200, {"device_code": "dc-python", "user_code": "PYTHON-1",
                             "verification_uri": "https://microsoft.com/devicelogin",
                             "expires_in": 900, "interval": 1, "message": "sign in"})
        elif path.endswith("/token") and form.get("grant_type") in (
                "urn:ietf:params:oauth:grant-type:device_code", "refresh_token"):
            device = form["grant_type"].endswith("device_code")
            tag = "signin" if device else "refreshed"
            self.reply(200, {
                "token_type": "Bearer",
                # The scopes granted: those asked for (the device code request carries
                # them for the device_code grant).
                "scope": server.device_scope if device else form.get("scope", ""),
                "expires_in": EXPIRES_IN,
                "ext_expires_in": EXPIRES_IN,
                "access_token": "at-python-%s" % tag,
                "refresh_token": "rt-python-%s" % tag,
                "id_token": id_token(server.user["uid"], server.tenant, server.user["username"]),
                "client_info": b64({"uid": server.user["uid"], "utid": server.tenant}),
            })
        else:
            self.reply(400, {"error": "unsupported_grant_type"})


class Redirect(requests.Session):
    """msal's http_client: every URL under AUTHORITY goes to `base`."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):
        if url.startswith(AUTHORITY):
            url = self.base + url[len(AUTHORITY):]
        return super().request(method, url, *args, **kwargs)


def load(infile):
    cache = msal.SerializableTokenCache()
    with open(infile) as f:
        cache.deserialize(f.read())
    return cache


def report(authority, **fields):
    fields["requests"] = authority.requests
    fields["token_requests"] = len(authority.token_requests())
    print(json.dumps(fields))


def public_app(client_id, tenant, cache, authority):
    return msal.PublicClientApplication(
        client_id, authority="%s/%s" % (AUTHORITY, tenant), token_cache=cache,
        http_client=Redirect(authority.base()),
        instance_discovery=None if KNOWN_HOST else False)


def sign_in(out, client_id, tenant, scopes):
    authority = MockAuthority(client_id, tenant)
    cache = msal.SerializableTokenCache()
    app = public_app(client_id, tenant, cache, authority)
    flow = app.initiate_device_flow(scopes=scopes)
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        sys.exit("device flow failed: %s" % result.get("error"))
    with open(out, "w") as f:
        f.write(cache.serialize())
    user = authority.user
    report(authority,
           home_account_id="%s.%s" % (user["uid"], tenant), username=user["username"],
           access_token=result["access_token"], refresh_token="rt-python-signin",
           id_token=result["id_token"])


def result_of(result):
    if not result:
        return None
    return {k: result[k] for k in ("access_token", "token_source", "error") if k in result}


def silent(infile, out, client_id, tenant, scopes):
    authority = MockAuthority(client_id, tenant)
    cache = load(infile)
    app = public_app(client_id, tenant, cache, authority)
    accounts = app.get_accounts()
    if accounts:  # A refresh answers for the account whose refresh token it redeems
        authority.user = {"uid": accounts[0]["home_account_id"].split(".")[0],
                          "username": accounts[0]["username"]}
    result = app.acquire_token_silent(scopes, account=accounts[0]) if accounts else None
    with open(out, "w") as f:
        f.write(cache.serialize())
    report(authority,
           accounts=[{k: a.get(k) for k in ("home_account_id", "environment", "username")}
                     for a in accounts],
           result=result_of(result))


def for_client(infile, client_id, tenant, scopes):
    authority = MockAuthority(client_id, tenant)
    app = msal.ConfidentialClientApplication(
        client_id, client_credential="not-a-real-secret",
        authority="%s/%s" % (AUTHORITY, tenant), token_cache=load(infile),
        http_client=Redirect(authority.base()),
        instance_discovery=None if KNOWN_HOST else False)
    report(authority, result=result_of(app.acquire_token_for_client(scopes)))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "generate":
        generate(*args)
    elif command == "search":
        search(*args)
    elif command == "sign-in":
        sign_in(args[0], args[1], args[2], json.loads(args[3]))
    elif command == "silent":
        silent(args[0], args[1], args[2], args[3], json.loads(args[4]))
    elif command == "for-client":
        for_client(args[0], args[1], args[2], json.loads(args[3]))
    else:
        sys.exit(__doc__)
