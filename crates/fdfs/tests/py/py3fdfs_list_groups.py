"""Asks a tracker for its groups with the independent PyPI client py3fdfs.

Usage: py3fdfs_list_groups.py CLIENT_CONF

Prints `ok` when the tracker answered, `refused: <error>` when the
connection was closed or reset. Exits 3 when py3fdfs is missing (the test
must fail loudly, never skip).
"""
import sys

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
except ImportError as e:
    print("py3fdfs is not installed: %s" % e)
    sys.exit(3)


def main():
    client = Fdfs_client(get_tracker_conf(sys.argv[1]))
    try:
        client.list_all_groups()
    except Exception as e:  # py3fdfs raises its own and socket errors alike
        # An empty cluster answers with no group; that is still an answer.
        if "no group" in str(e).lower() or "groups count" in str(e).lower():
            print("ok")
            return
        print("refused: %s: %s" % (type(e).__name__, str(e).replace("\n", " ")))
        return
    print("ok")


main()
