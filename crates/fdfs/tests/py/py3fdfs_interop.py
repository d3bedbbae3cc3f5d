"""Drives a FastDFS cluster with the independent PyPI client py3fdfs.

Usage: py3fdfs_interop.py CLIENT_CONF WORK_DIR FOREIGN_ID FOREIGN_HEX [--no-download-to-file]

FOREIGN_ID / FOREIGN_HEX name a file uploaded by another client and its
expected content; this script checks it can read it. Prints one JSON object
with what it did, for the Rust test to check against the server.

Only calls that work on Python 3 are used: py3fdfs's metadata, ranged
download, slave and *_by_file calls are broken there. Its download_to_file
also miscounts partial socket reads and then waits for bytes that never
come; through a TCP relay such as docker-proxy reads are often partial, so
--no-download-to-file reads that file back with download_to_buffer instead.
"""
import json
import os
import sys

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
    from fdfs_client.exceptions import DataError
except ImportError as e:  # the test must fail loudly, never skip
    print(json.dumps({"error": "py3fdfs is not installed: %s" % e}))
    sys.exit(3)


def main():
    conf, work, foreign_id, foreign_hex = sys.argv[1:5]
    to_file = "--no-download-to-file" not in sys.argv[5:]
    out = {}

    def client():
        # A fresh client per step: py3fdfs returns broken connections to its
        # pool after an error.
        return Fdfs_client(get_tracker_conf(conf))

    data = b"py3fdfs buffer upload\n"
    r = client().upload_by_buffer(data, "txt")
    out["buffer_id"] = r["Remote file_id"].decode()
    out["buffer_status"] = r["Status"]

    local = os.path.join(work, "local.tar.gz")
    with open(local, "wb") as f:
        f.write(bytes(range(256)) * 300)
    r = client().upload_by_filename(local)
    out["file_id"] = r["Remote file_id"].decode()

    r = client().download_to_buffer(out["buffer_id"].encode())
    out["buffer_roundtrip"] = r["Content"] == data

    with open(local, "rb") as g:
        expected = g.read()
    if to_file:
        target = os.path.join(work, "downloaded.bin")
        client().download_to_file(target, out["file_id"].encode())
        with open(target, "rb") as f:
            out["file_roundtrip"] = f.read() == expected
    else:
        got = client().download_to_buffer(out["file_id"].encode())["Content"]
        out["file_roundtrip"] = got == expected

    r = client().download_to_buffer(foreign_id.encode())
    out["foreign_matches"] = r["Content"].hex() == foreign_hex

    r = client().upload_appender_by_buffer(b"line one\n", "log")
    ap = r["Remote file_id"]
    out["appender_id"] = ap.decode()
    r = client().append_by_buffer(b"line two\n", ap)
    out["append_status"] = r["Status"]
    out["appender_content"] = client().download_to_buffer(ap)["Content"].decode()
    client().truncate_file(8, ap)
    client().modify_by_buffer(b"LINE", ap)
    out["appender_after_edit"] = client().download_to_buffer(ap)["Content"].decode()

    r = client().delete_file(out["buffer_id"].encode())
    out["delete_result"] = r[0]
    try:
        client().delete_file(out["buffer_id"].encode())
        out["second_delete"] = "succeeded"
    except DataError as e:
        out["second_delete"] = str(e)
    try:
        client().download_to_buffer(out["buffer_id"].encode())
        out["download_deleted"] = "succeeded"
    except DataError as e:
        out["download_deleted"] = str(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
