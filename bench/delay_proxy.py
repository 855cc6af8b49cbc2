#!/usr/bin/env python3
"""A TCP proxy on loopback that adds a fixed latency to each direction, as a WAN link would.

  delay_proxy.py UPSTREAM_HOST:PORT [--delay-ms 50] [--window-kib 4096] [--port 0]

Prints the port it listens on (first line of stdout), then forwards every connection to
UPSTREAM: a new connection waits one round trip (2 x delay, the TCP handshake) before
anything flows; then each chunk read from one side is written to the other side `delay`
later, in order. At most `window` bytes per direction and connection are on the way at a
time (a TCP receive window: one connection carries at most window / delay bytes a
second; 0 for no limit). Bytes pass unchanged, so HTTP Host headers and S3 signatures hold.
Runs until killed.
"""

import argparse
import asyncio
import sys


async def pipe(reader, writer, delay, window):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    room = asyncio.Condition()
    in_flight = 0

    async def send():
        nonlocal in_flight
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            async with room:
                in_flight -= len(data)
                room.notify_all()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(1 << 18)
            if data and window:
                async with room:
                    await room.wait_for(lambda: in_flight == 0 or in_flight + len(data) <= window)
                    in_flight += len(data)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    finally:
        sender.cancel()


async def handle(client_r, client_w, upstream, delay, window):
    await asyncio.sleep(2 * delay)
    host, port = upstream
    try:
        up_r, up_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    tasks = [asyncio.ensure_future(pipe(client_r, up_w, delay, window)),
             asyncio.ensure_future(pipe(up_r, client_w, delay, window))]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for t in pending:
        t.cancel()
    for t in done:
        if not t.cancelled():
            t.exception()  # a reset connection ends both directions, nothing more
    for w in (client_w, up_w):
        w.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("upstream", help="HOST:PORT")
    ap.add_argument("--delay-ms", type=float, default=50)
    ap.add_argument("--window-kib", type=int, default=4096)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(":")
    if not host or not port.isdigit():
        ap.error("upstream must be HOST:PORT, not %r" % a.upstream)
    delay, window = a.delay_ms / 1000, a.window_kib * 1024
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, (host, int(port)), delay, window), "127.0.0.1", a.port)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
