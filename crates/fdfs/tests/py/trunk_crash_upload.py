"""Uploads small random buffers through the tracker with the independent
PyPI client py3fdfs while the trunk crash test kills the trunk server.

Usage: trunk_crash_upload.py CLIENT_CONF STOP_FILE SEED MAX_BYTES

Uploads until STOP_FILE exists. Prints one line per ACKNOWLEDGED upload:
`acked <file id> <size> <crc32 hex>` (py3fdfs prints its own errors on
stdout too; failed uploads are left out: only what
py3fdfs was told counts); exits 3 when py3fdfs is missing (the test fails
loudly, never skips).
"""
import os
import random
import sys
import zlib

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:
    print("py3fdfs is not installed: %s" % e)
    sys.exit(3)


def main():
    conf, stop, seed, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    failed = 0
    errors = {}
    while not os.path.exists(stop):
        n = rng.randint(1, max_bytes)
        data = rng.randbytes(n)
        try:
            # A fresh client per call: py3fdfs pools broken connections.
            r = Fdfs_client(get_tracker_conf(conf)).upload_by_buffer(data, "bin")
            file_id = r["Remote file_id"].decode()
        except Exception as e:  # the kill breaks some: not acknowledged
            failed += 1
            errors[type(e).__name__ + ": " + str(e)[:120]] = errors.get(type(e).__name__ + ": " + str(e)[:120], 0) + 1
            continue
        print("acked %s %d %08x" % (file_id, n, zlib.crc32(data) & 0xFFFFFFFF), flush=True)
    print("py3fdfs uploader: %d failed: %r" % (failed, errors), file=sys.stderr)


main()
