#!/usr/bin/env python3
"""Writes the JWKS of an EC P-256 key and prints an ES256 token signed with it, valid for a
day, for benches/auth-tls.sh. Uses only the openssl command line (no Python crypto)."""
import base64, json, subprocess, sys, time

key_file, jwks_file = sys.argv[1], sys.argv[2]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# The public point (04 || x || y) is the last 65 bytes of the DER SubjectPublicKeyInfo.
spki = subprocess.run(["openssl", "ec", "-in", key_file, "-pubout", "-outform", "DER"],
                      capture_output=True, check=True).stdout
point = spki[-65:]
jwk = {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "bench-1",
       "x": b64url(point[1:33]), "y": b64url(point[33:])}
with open(jwks_file, "w") as f:
    json.dump({"keys": [jwk]}, f)

now = int(time.time())
header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "bench-1"}).encode())
claims = {"iss": "https://idp.bench.test", "aud": "corridor", "sub": "bench-partner",
          "iat": now, "nbf": now, "exp": now + 86400}
payload = b64url(json.dumps(claims).encode())
signing_input = f"{header}.{payload}".encode()
der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_file],
                     input=signing_input, capture_output=True, check=True).stdout


def der_integers(sig: bytes):
    """The two INTEGERs of an ECDSA-Sig-Value SEQUENCE, each left-padded to 32 bytes."""
    at = 2 if sig[1] < 0x80 else 3
    out = []
    for _ in range(2):
        assert sig[at] == 0x02
        length = sig[at + 1]
        value = sig[at + 2:at + 2 + length].lstrip(b"\0")
        out.append(value.rjust(32, b"\0"))
        at += 2 + length
    return out


r, s = der_integers(der)
print(f"{header}.{payload}.{b64url(r + s)}")
