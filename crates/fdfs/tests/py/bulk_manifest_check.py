"""Reads a bulk-upload manifest with Python's own csv/json modules and
checks every row through the independent PyPI client py3fdfs.

Usage: bulk_manifest_check.py CLIENT_CONF MANIFEST BASE_DIR present|gone

present: each row's file downloads, and its bytes equal the local file at
BASE_DIR/path and the row's size and CRC32 (empty files are only compared
locally: storages refuse to download an empty file).
gone: downloading each row's file fails.

Prints "ok N", then "bad PATH: WHY" per failed row, then
"row\tPATH\tFILE_ID\tURL" per row (test paths hold no tabs or newlines).
"""
import csv
import json
import os
import sys
import zlib

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:  # the test must fail loudly, never skip
    print("py3fdfs is not installed: %s" % e, file=sys.stderr)
    sys.exit(3)


def load(manifest):
    with open(manifest, newline="", encoding="utf-8") as f:
        if manifest.endswith(".json"):
            return json.load(f)
        return list(csv.DictReader(f))


def main():
    conf, manifest, base, mode = sys.argv[1:5]
    client = Fdfs_client(get_tracker_conf(conf))
    rows = load(manifest)
    ok, bad = 0, []
    for row in rows:
        path, file_id = row["path"], row["file_id"]
        size, crc = int(row["size"]), int(row["crc32"])
        try:
            if size == 0 and mode == "present":
                got = b""
            else:
                got = client.download_to_buffer(file_id.encode())["Content"]
        except Exception as e:  # noqa: BLE001 - every failure is reported
            if mode == "gone":
                ok += 1
            else:
                bad.append("%s: download failed: %s" % (path, e))
            continue
        if mode == "gone":
            bad.append("%s: still downloadable" % path)
            continue
        with open(os.path.join(base, path), "rb") as f:
            local = f.read()
        if got != local:
            bad.append("%s: content differs (%d vs %d bytes)" % (path, len(got), len(local)))
        elif len(got) != size or zlib.crc32(got) & 0xFFFFFFFF != crc:
            bad.append("%s: size or crc32 differs from the row" % path)
        else:
            ok += 1
    print("ok %d" % ok)
    for b in bad:
        print("bad %s" % b)
    for r in rows:
        print("row\t%s\t%s\t%s" % (r["path"], r["file_id"], r["url"]))


if __name__ == "__main__":
    main()
