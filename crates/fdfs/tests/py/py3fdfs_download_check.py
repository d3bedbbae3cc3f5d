"""Downloads files with the independent PyPI client py3fdfs and checks
their CRC32.

Usage: py3fdfs_download_check.py CLIENT_CONF LIST_FILE
LIST_FILE holds one "<file_id> <crc32 as decimal>" per line. Prints one
JSON object: {"checked": n, "bad": [file ids that failed or differ]}.
"""
import json
import sys
import zlib

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:  # the test must fail loudly, never skip
    print(json.dumps({"error": "py3fdfs is not installed: %s" % e}))
    sys.exit(3)


def main():
    conf, listing = sys.argv[1:3]
    client = Fdfs_client(get_tracker_conf(conf))
    checked, bad = 0, []
    with open(listing) as f:
        for line in f:
            file_id, crc = line.split()
            try:
                got = client.download_to_buffer(file_id.encode())["Content"]
                if zlib.crc32(got) & 0xFFFFFFFF != int(crc):
                    bad.append(file_id)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                bad.append("%s (%s)" % (file_id, e))
            checked += 1
    print(json.dumps({"checked": checked, "bad": bad}))


if __name__ == "__main__":
    main()
