"""Start the stack's S3 server (SeaweedFS) in a container, with its key pair taken from env.

SeaweedFS reads S3 identities only from a file, so the file is written at start (private
to this container, never baked into the image) from ``S3_ACCESS_KEY_ID`` and
``S3_SECRET_ACCESS_KEY``; then this process becomes ``weed server``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from containers.shared import S3_PORT, Credentials, weed_server, write_s3_identities


def main() -> None:
    handle, config = tempfile.mkstemp(prefix="s3-identities-", suffix=".json")
    os.close(handle)
    creds = Credentials(os.environ["S3_ACCESS_KEY_ID"], os.environ["S3_SECRET_ACCESS_KEY"])
    write_s3_identities(Path(config), creds)
    # Clients reach the S3 gateway on every interface of the compose network. Each bucket
    # grows volumes of its own: 0 sizes the count to the free disk, where a fixed default
    # ran out at the second bucket (No writable volumes).
    args = weed_server(
        Path(os.environ["S3_DATA_DIR"]), S3_PORT, Path(config), bind="0.0.0.0",
        options=["-master.volumeSizeLimitMB=1024", "-volume.max=0"],
    )  # fmt: skip
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
