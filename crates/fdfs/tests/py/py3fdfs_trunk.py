"""Uploads small and big buffers with the independent PyPI client py3fdfs
into a trunk-enabled cluster and reads them back.

Usage: py3fdfs_trunk.py CLIENT_CONF SMALL_COUNT SMALL_BYTES BIG_BYTES
Prints one JSON object: {"small": [ids], "big": id, "roundtrip_bad": [ids]}.
"""
import json
import sys

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:  # the test must fail loudly, never skip
    print(json.dumps({"error": "py3fdfs is not installed: %s" % e}))
    sys.exit(3)


def content(i, n):
    return bytes((i * 31 + k) % 251 for k in range(n))


def main():
    conf = sys.argv[1]
    count, small, big = (int(v) for v in sys.argv[2:5])

    def client():
        # A fresh client per call: py3fdfs pools broken connections.
        return Fdfs_client(get_tracker_conf(conf))

    out = {"small": [], "roundtrip_bad": []}
    uploads = []
    for i in range(count):
        data = content(i, small + i)
        r = client().upload_by_buffer(data, "bin")
        uploads.append((r["Remote file_id"].decode(), data))
    data = content(99, big)
    r = client().upload_by_buffer(data, "dat")
    out["big"] = r["Remote file_id"].decode()
    uploads.append((out["big"], data))
    for file_id, data in uploads:
        got = client().download_to_buffer(file_id.encode())["Content"]
        if got != data:
            out["roundtrip_bad"].append(file_id)
    out["small"] = [u[0] for u in uploads[:count]]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
