#!/usr/bin/env python3
"""Paced keep-alive HTTP load on 127.0.0.1 that counts every failure.

    loadgen.py --port PORT [--conns 32] [--rate 400] [--timeout 5]

Each of CONNS connections sends requests at RATE/CONNS per second (paced, a
closed loop per connection: a slow answer delays that connection's next
request), alternating `GET /health/` and `POST /echo/` like the traffic test,
over HTTP/1.1 keep-alive, reconnecting only after an error or
`Connection: close`. Nothing is retried: a request that fails is counted once
under the first thing that went wrong:

  connect   TCP connect to the host nginx failed
  write     sending the request failed
  read      the connection ended or reset before a complete response
            (`read_idle` counts the subset where no byte came back on a reused
            keep-alive connection: the kind an HTTP client may retry for GET)
  timeout   no complete response within TIMEOUT seconds
  non2xx    a complete response with a status outside 200-299 (by status)

Runs until SIGINT or SIGTERM, then stops sending, lets requests in flight
finish (up to TIMEOUT) and prints one JSON object on stdout with the counts,
the latency of every completed response (microseconds, any status), the
X-Release tags seen and the first error messages.
"""
import argparse
import asyncio
import json
import random
import signal
import sys
import time


class Stats:
    def __init__(self):
        self.requests = 0
        self.ok = 0
        self.non2xx = {}
        self.fail = {"connect": 0, "write": 0, "read": 0, "timeout": 0}
        self.read_idle = 0
        self.lat_us = []
        self.tags = {}
        self.errors = []
        self.t0 = time.time()

    def error(self, kind, msg):
        self.fail[kind] += 1
        if len(self.errors) < 30:
            self.errors.append(f"{time.time() - self.t0:.3f}s {kind}: {msg}")


async def read_response(reader):
    line = await reader.readline()
    if not line:
        raise EOFError("connection closed before a response")
    parts = line.split()
    status = int(parts[1])
    headers = {}
    while True:
        h = await reader.readline()
        if not h:
            raise EOFError("connection closed in the headers")
        h = h.rstrip(b"\r\n")
        if not h:
            break
        k, _, v = h.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            n = int((await reader.readline()).strip(), 16)
            await reader.readexactly(n + 2)
            if n == 0:
                break
    else:
        await reader.read()
        headers[b"connection"] = b"close"
    return status, headers


async def client(i, args, st, stop):
    interval = args.conns / args.rate
    nxt = time.monotonic() + random.random() * interval
    reader = writer = None
    reused = False
    n = 0
    while not stop.is_set():
        delay = nxt - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
        nxt = max(nxt + interval, time.monotonic() - interval)
        n += 1
        st.requests += 1
        t0 = time.perf_counter()
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", args.port), args.timeout)
                reused = False
            except asyncio.TimeoutError:
                st.error("timeout", f"conn {i}: connect timed out")
                continue
            except OSError as e:
                st.error("connect", f"conn {i}: {e}")
                continue
        if n % 2:
            req = b"GET /health/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
        else:
            body = f"payload {i} {n}".encode()
            req = (b"POST /echo/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        try:
            writer.write(req)
            await writer.drain()
        except OSError as e:
            st.error("write", f"conn {i} req {n}: {e}")
            writer.close()
            reader = writer = None
            continue
        try:
            status, headers = await asyncio.wait_for(read_response(reader), args.timeout)
        except asyncio.TimeoutError:
            st.error("timeout", f"conn {i} req {n}: no response in {args.timeout} s")
            writer.close()
            reader = writer = None
            continue
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            if reused and isinstance(e, EOFError) and "before a response" in str(e):
                st.read_idle += 1
            st.error("read", f"conn {i} req {n} ({'reused' if reused else 'new'} conn): "
                             f"{type(e).__name__}: {e}")
            writer.close()
            reader = writer = None
            continue
        st.lat_us.append(int((time.perf_counter() - t0) * 1e6))
        if 200 <= status < 300:
            st.ok += 1
            tag = headers.get(b"x-release")
            if tag:
                t = tag.decode()
                st.tags[t] = st.tags.get(t, 0) + 1
        else:
            st.non2xx[str(status)] = st.non2xx.get(str(status), 0) + 1
            if len(st.errors) < 30:
                st.errors.append(f"{time.time() - st.t0:.3f}s HTTP {status}")
        reused = True
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rate", type=float, default=400)
    ap.add_argument("--timeout", type=float, default=5)
    args = ap.parse_args()
    st = Stats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    print("ready", file=sys.stderr, flush=True)
    await asyncio.gather(*(client(i, args, st, stop) for i in range(args.conns)))
    out = {
        "requests": st.requests, "ok": st.ok, "non2xx": st.non2xx, **st.fail,
        "read_idle": st.read_idle, "seconds": time.time() - st.t0,
        "tags": st.tags, "errors": st.errors, "lat_us": st.lat_us,
    }
    json.dump(out, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
