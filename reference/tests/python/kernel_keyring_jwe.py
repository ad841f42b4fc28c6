"""The kernel-keyring cache file through an implementation that is not ours: jwcrypto
for the JWE, keyctl (keyutils) for the key.

    kernel_keyring_jwe.py read  PATH DESCRIPTION           prints the plaintext
    kernel_keyring_jwe.py write PATH DESCRIPTION PLAINTEXT  new key with keyctl, then JWE

`read` finds the key as the Rust backend (and the Go SDK) name it: a `user` key described
by DESCRIPTION, searched from the user keyring (the persistent keyring is linked into it).
`write` makes the key the way the Go SDK does (32 random bytes and a NUL, in the
persistent keyring) and writes a compact JWE, alg dir, enc A256GCM, kid the key serial.
"""

import base64
import json
import os
import subprocess
import sys

from jwcrypto import jwe, jwk


def keyctl(*args, data=None):
    return subprocess.run(
        ["keyctl", *args], input=data, capture_output=True, check=True
    ).stdout


def key_of(serial):
    payload = keyctl("pipe", serial)
    if len(payload) == 33 and payload[32] == 0:
        payload = payload[:32]
    assert len(payload) == 32, f"a 256-bit key, not {len(payload)} bytes"
    k = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return jwk.JWK(kty="oct", k=k)


def read(path, description):
    serial = keyctl("search", "@u", "user", description).decode().strip()
    token = jwe.JWE()
    with open(path, "rb") as f:
        token.deserialize(f.read().decode())
    header = json.loads(token.objects["protected"])
    assert header["alg"] == "dir" and header["enc"] == "A256GCM", header
    assert header.get("kid") == serial, (header, serial)
    token.decrypt(key_of(serial))
    sys.stdout.write(token.payload.decode())


def write(path, description, plaintext):
    ring = keyctl("get_persistent", "@u").decode().strip()
    serial = (
        keyctl("padd", "user", description, ring, data=os.urandom(32) + b"\0")
        .decode()
        .strip()
    )
    token = jwe.JWE(
        plaintext.encode(),
        protected=json.dumps({"alg": "dir", "enc": "A256GCM", "kid": serial}),
    )
    token.add_recipient(key_of(serial))
    with open(path, "w") as f:
        f.write(token.serialize(compact=True))
    os.chmod(path, 0o600)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"read": read, "write": write}[command](*args)
