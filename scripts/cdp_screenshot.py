"""Screenshot of a page after it has run for a while in real time.

Usage: cdp_screenshot.py URL OUT.png SECONDS [WIDTH HEIGHT]

`chromium --screenshot` shoots as soon as the page has loaded; a page that
polls (the status page's rate chart) needs real seconds first. This starts
headless chromium with a DevTools port, waits, and asks for the picture
over the DevTools protocol (a minimal WebSocket client, standard library
only).
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ws_connect(url):
    host_port, path = url[len("ws://"):].split("/", 1)
    host, port = host_port.split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((
        "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host_port, key)
    ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError("websocket handshake failed: %r" % head)
    return sock


def ws_send(sock, text):
    data = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(data) < 126:
        header += bytes([0x80 | len(data)])
    elif len(data) < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise RuntimeError("devtools connection closed")
        out += chunk
    return out


def ws_recv(sock):
    message = b""
    while True:
        b0, b1 = recv_exact(sock, 2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack(">H", recv_exact(sock, 2))[0]
        elif length == 127:
            length = struct.unpack(">Q", recv_exact(sock, 8))[0]
        message += recv_exact(sock, length)
        if b0 & 0x80:
            return message.decode()


def main():
    url, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    width, height = (sys.argv[4:6] + ["1280", "900"][len(sys.argv[4:6]):])[:2]
    port = free_port()
    profile = tempfile.mkdtemp()
    browser = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--user-data-dir=" + profile, "--window-size=%s,%s" % (width, height),
         "--remote-debugging-port=%d" % port, url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pages = []
        for _ in range(100):
            try:
                listing = urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=5)
                pages = [p for p in json.load(listing) if p.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if not pages:
            raise RuntimeError("chromium did not open the page")
        time.sleep(seconds)
        sock = ws_connect(pages[0]["webSocketDebuggerUrl"])
        ws_send(sock, json.dumps({"id": 1, "method": "Page.captureScreenshot",
                                  "params": {"format": "png"}}))
        while True:
            reply = json.loads(ws_recv(sock))
            if reply.get("id") == 1:
                break
        with open(out, "wb") as f:
            f.write(base64.b64decode(reply["result"]["data"]))
        print("wrote %s" % out)
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
