"""Reads files back with the independent PyPI client py3fdfs after the
crash test's kills.

Usage: crash_readback.py CLIENT_CONF < file ids, one a line

Prints one line per file id: `<file id> <size> <crc32 hex>`, or
`<file id> error <message>`; exits 3 when py3fdfs is missing (the test
fails loudly, never skips).
"""
import sys
import zlib

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:
    print("py3fdfs is not installed: %s" % e)
    sys.exit(3)


def main():
    conf = sys.argv[1]
    for line in sys.stdin:
        file_id = line.strip()
        if not file_id:
            continue
        try:
            # A fresh client per file: py3fdfs returns broken connections to
            # its pool after an error.
            r = Fdfs_client(get_tracker_conf(conf)).download_to_buffer(file_id.encode())
            content = r["Content"]
            print("%s %d %08x" % (file_id, len(content), zlib.crc32(content) & 0xFFFFFFFF))
        except Exception as e:  # reported, the Rust test decides
            print("%s error %s" % (file_id, str(e).replace("\n", " ")))


main()
