"""Reads trunk-backed files with the independent PyPI client py3fdfs:
whole and a byte range of each (py3fdfs's metadata calls are broken on
Python 3, see py3fdfs_interop.py).

Usage: py3fdfs_trunk_check.py CLIENT_CONF LIST_FILE
LIST_FILE holds one "<file_id> <content as hex>" per line. Prints one JSON
object: {"checked": n, "ranged": n, "bad": [...]}.
"""
import json
import sys

try:
    from fdfs_client.client import Fdfs_client, get_tracker_conf
    from fdfs_client.storage_client import Storage_client
    from fdfs_client.tracker_client import Tracker_client
    from fdfs_client.utils import split_remote_fileid
except ImportError as e:  # the test must fail loudly, never skip
    print(json.dumps({"error": "py3fdfs is not installed: %s" % e}))
    sys.exit(3)


def download_range(client, file_id, offset, length):
    # Fdfs_client.download_to_buffer fails for any non-zero offset in
    # py3fdfs 2.2.0 (an unbound local): its own lower layer, as it would.
    group, remote = split_remote_fileid(file_id)
    tc = Tracker_client(client.tracker_pool)
    srv = tc.tracker_query_storage_fetch(group, remote)
    store = Storage_client(srv.ip_addr, srv.port, client.timeout)
    return store.storage_download_to_buffer(tc, srv, None, offset, length, remote)["Content"]


def main():
    conf, listing = sys.argv[1:3]
    client = Fdfs_client(get_tracker_conf(conf))
    checked, ranged, bad = 0, 0, []
    with open(listing) as f:
        for line in f:
            file_id, hexed = line.split()
            content = bytes.fromhex(hexed)
            try:
                got = client.download_to_buffer(file_id.encode())["Content"]
                if got != content:
                    bad.append("%s whole: %d bytes differ" % (file_id, len(got)))
                checked += 1
                if len(content) > 2:
                    n = min(5, len(content) - 1)
                    got = download_range(client, file_id.encode(), 1, n)
                    if got != content[1:1 + n]:
                        bad.append("%s range: %r" % (file_id, got))
                    ranged += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported
                bad.append("%s (%s)" % (file_id, e))
    print(json.dumps({"checked": checked, "ranged": ranged, "bad": bad}))


if __name__ == "__main__":
    main()
