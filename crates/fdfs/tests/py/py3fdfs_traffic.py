"""Uploads and downloads a few files with the independent PyPI client
py3fdfs, so a status page has traffic to show.

Usage: py3fdfs_traffic.py CLIENT_CONF UPLOADS
Uploads UPLOADS small buffers, downloads each once and checks it. Prints
one JSON object: {"uploaded": [file ids], "downloaded": n}.
"""
import json
import sys

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:  # the test must fail loudly, never skip
    print(json.dumps({"error": "py3fdfs is not installed: %s" % e}))
    sys.exit(3)


def main():
    conf, uploads = sys.argv[1], int(sys.argv[2])
    ids, downloaded = [], 0
    for i in range(uploads):
        data = ("py3fdfs status page file %d\n" % i).encode() * 50
        r = Fdfs_client(get_tracker_conf(conf)).upload_by_buffer(data, "txt")
        file_id = r["Remote file_id"]
        ids.append(file_id.decode())
        got = Fdfs_client(get_tracker_conf(conf)).download_to_buffer(file_id)
        if got["Content"] != data:
            print(json.dumps({"error": "%s read back differently" % ids[-1]}))
            sys.exit(1)
        downloaded += 1
    print(json.dumps({"uploaded": ids, "downloaded": downloaded}))


if __name__ == "__main__":
    main()
