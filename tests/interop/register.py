"""An independent RFC 9421 client: registers a provider and a resource at a
cpid node using only Python's standard library and `cryptography`.

    python3 register.py http://127.0.0.1:8053 provider-key.pem KEYID

KEYID is the cpid key id of the key (`cpid key generate` prints it).
Prints the two identifiers. Nothing here is shared with cpid's own signer:
the signature base is built from RFC 9421 §2.5 and the digest from RFC 9530.
"""
import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def signed(url, method, path, body, key, keyid):
    data = json.dumps(body).encode() if body is not None else b""
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
    params = '("@method" "@path" "content-digest");created={};nonce="{}";keyid="{}";alg="ed25519"'.format(
        int(time.time()), os.urandom(12).hex(), keyid
    )
    base = '"@method": {}\n"@path": {}\n"content-digest": {}\n"@signature-params": {}'.format(
        method, path, digest, params
    )
    signature = base64.b64encode(key.sign(base.encode())).decode()
    headers = {
        "Content-Digest": digest,
        "Signature-Input": "py=" + params,
        "Signature": "py=:" + signature + ":",
    }
    if data:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url + path, data=data or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def main():
    url, key_file, keyid = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    status, pv = signed(url, "POST", "/v1/providers", {
        "name": "Python interop", "organisation": "PY-1", "contact": "py@interop.example",
        "region": "44", "public_key": public_pem,
    }, key, keyid)
    assert status == 201, (status, pv)
    status, rec = signed(url, "POST", "/v1/identifiers", {
        "class": "AS", "values": [{"type": "URL", "data": "https://py.interop.example/"}],
    }, key, keyid)
    assert status == 201, (status, rec)
    print(pv["identifier"])
    print(rec["identifier"])


if __name__ == "__main__":
    main()
