#!/usr/bin/env python3
"""Userspace network delay for the fault suite (issue 9) on kernels without sch_netem: a TCP relay
that accepts on --listen, connects each client to --target and delivers every chunk in both
directions --delay-ms after it was read (order kept; a close is delayed the same way). Run by
tests/faults/netns.py inside a node's namespace in front of its PostgreSQL. Prints "listening"
once bound; stops on SIGTERM."""
import argparse
import asyncio
import signal


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


async def pump(reader, writer, delay, peer_writer):
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()

    async def sender():
        while True:
            due, data = await q.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(65536)
            q.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await task
    except (ConnectionError, OSError):
        task.cancel()
    finally:
        for w in (writer, peer_writer):
            try:
                w.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, type=hostport)
    ap.add_argument("--target", required=True, type=hostport)
    ap.add_argument("--delay-ms", required=True, type=float)
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0

    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.wait_for(asyncio.open_connection(*a.target), 10)
        except (OSError, asyncio.TimeoutError):
            cwriter.close()
            return
        await asyncio.gather(pump(creader, swriter, delay, cwriter),
                             pump(sreader, cwriter, delay, swriter), return_exceptions=True)

    server = await asyncio.start_server(handle, *a.listen, reuse_address=True)
    print(f"listening on {a.listen[0]}:{a.listen[1]} -> {a.target[0]}:{a.target[1]}, "
          f"delay {a.delay_ms} ms each way", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
