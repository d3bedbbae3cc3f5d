#!/usr/bin/env python3
"""Seconds from starting `fdfs server` on a fresh base path until the tracker
hands out a storage for uploads and that storage answers ACTIVE_TEST; two
builds side by side, alternated, three rounds.

    python3 bench/first-start.py OLD_FDFS NEW_FDFS
"""
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time


def call(addr, cmd, body=b''):
    s = socket.create_connection(addr, timeout=2)
    s.sendall(struct.pack('>QBB', len(body), cmd, 0) + body)
    h = b''
    while len(h) < 10:
        c = s.recv(10 - len(h))
        if not c: raise IOError('closed')
        h += c
    n, _, st = struct.unpack('>QBB', h)
    b = b''
    while len(b) < n: b += s.recv(n - len(b))
    s.close()
    return st, b
def measure(binary, tp, sp):
    base = tempfile.mkdtemp(prefix='first-start-')
    t0 = time.time()
    p = subprocess.Popen([binary, 'server', '--base-path', base, '--tracker-port', str(tp), '--storage-port', str(sp), '--http-port', '0', '--log-level', 'warn'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.time() - t0 < 120:
            try:
                st, b = call(('127.0.0.1', tp), 101)
                if st == 0 and len(b) >= 39:
                    ip = b[16:31].rstrip(b'\0').decode(); port = struct.unpack('>Q', b[31:39])[0]
                    if call((ip, port), 111)[0] == 0:
                        return time.time() - t0
            except Exception:
                pass
            time.sleep(0.02)
        return None
    finally:
        p.kill(); p.wait(); shutil.rmtree(base, ignore_errors=True)
for rnd in range(3):
    for name, b, tp, sp in [('before', sys.argv[1], 42122, 43000), ('after', sys.argv[2], 42123, 43001)]:
        print(f'round {rnd} {name}: {measure(b, tp, sp):.2f} s', flush=True)
