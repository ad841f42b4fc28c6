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

Fake tokens look like "at-<n>-..." so tests can tell them apart; none is a real secret.
"""
import base64
import json
import sys
import time

import msal

AUTHORITY = "https://login.microsoftonline.com"


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


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "search":
        search(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
