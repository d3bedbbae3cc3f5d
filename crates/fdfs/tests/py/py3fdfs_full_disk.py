"""py3fdfs against a storage whose disk is full, then freed.

Usage: py3fdfs_full_disk.py CLIENT_CONF expect-full|until-accepted

expect-full: one 6 MB upload, which must fail; prints the error. The
storage refuses it before reading the content: py3fdfs sends all of it
before reading the answer, so it sees the status only thanks to the
storage's lingering close.
until-accepted: retries an upload (only ENOSPC may refuse it) until one
succeeds or 30 s pass; prints file_id=... and the seconds it took.
"""
import sys
import time

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
    from fdfs_client.exceptions import DataError
except ImportError as e:  # the test must fail loudly, never skip
    print("py3fdfs is not installed: %s" % e)
    sys.exit(3)

DATA = b"py3fdfs after a full disk\n" * 1000
BIG = b"x" * (6 * 1024 * 1024)
DEADLINE_SECS = 30


def upload(conf, data=DATA):
    # A fresh client per try: py3fdfs pools connections an error broke.
    return Fdfs_client(get_tracker_conf(conf)).upload_by_buffer(data, "txt")


def main():
    conf, mode = sys.argv[1:3]
    if mode == "expect-full":
        try:
            r = upload(conf, BIG)
        except DataError as e:
            print("refused: %s" % e)
            return 0
        except Exception as e:  # a reset instead of the answer
            print("failed without the storage's answer: %r" % (e,))
            return 1
        print("accepted on a full disk: %r" % (r,))
        return 1
    start = time.monotonic()
    last = None
    while time.monotonic() - start < DEADLINE_SECS:
        try:
            r = upload(conf)
            print("file_id=%s" % r["Remote file_id"].decode())
            print("seconds=%.2f" % (time.monotonic() - start))
            return 0
        except DataError as e:
            if "28" not in str(e):
                print("unexpected error: %s" % e)
                return 1
            last = e
        time.sleep(0.05)
    print("still refused after %d s: %s" % (DEADLINE_SECS, last))
    return 1


if __name__ == "__main__":
    sys.exit(main())
