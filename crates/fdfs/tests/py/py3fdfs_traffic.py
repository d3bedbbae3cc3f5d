"""Uploads and reads back files with the independent PyPI client py3fdfs.

Usage: py3fdfs_traffic.py CLIENT_CONF COUNT SIZE
Uploads COUNT buffers of SIZE bytes (each different), downloads each one
and compares. Prints `ID <file id>` per upload and `BAD <file id>` per
file read back wrong.
"""
import sys

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:  # the test must fail loudly, never skip
    print("py3fdfs is not installed: %s" % e, file=sys.stderr)
    sys.exit(3)


def main():
    conf, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = Fdfs_client(get_tracker_conf(conf))
    for i in range(count):
        data = bytes([(i * 7 + j) % 251 for j in range(size)])
        r = client.upload_by_buffer(data, "bin")
        file_id = r["Remote file_id"].decode()
        print("ID " + file_id)
        got = client.download_to_buffer(file_id.encode())["Content"]
        if got != data:
            print("BAD " + file_id)


if __name__ == "__main__":
    main()
