"""A Privicore client written the way the integration guides show it, standard library only.

Each client (one per --token, all on one event loop) joins its WebSocket session first.
Each call sends its request, reads the 202 and its X-DPT-CAB-ID, and only then registers
a listener for that id. The socket reader hands every event to the listeners registered at
that moment and drops the rest, so an event that arrives before its 202 is lost, exactly
as it is for such clients. A client makes one call at a time, as the guides do: with
several calls in flight on one socket, frames of one call can be read before another
call's 202 whatever the server does.

Usage: guide_client.py --api URL --ws URL --token T [--token T ...] --cycles N
Each cycle is reserve -> exchange -> request data; the cycles are shared among the
clients. Prints a JSON summary of calls and missed acks per kind.
"""

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
from urllib.parse import urlencode, urlparse

# A missed ack never arrives; a late one (a loaded machine) still counts as delivered.
WAIT_SECONDS = float(os.environ.get("GUIDE_WAIT_SECONDS", "60"))


class ConnectionClosed(Exception):
    pass


class Http:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host, port, token):
        self.host, self.port, self.token = host, port, token
        self.reader = self.writer = None

    async def request(self, method, path, form=None):
        try:
            return await self.exchange(method, path, form)
        except ConnectionClosed:
            # A kept-alive connection the server closed while idle: send on a new one,
            # as HTTP clients do.
            self.writer = None
            return await self.exchange(method, path, form)

    async def exchange(self, method, path, form):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = urlencode(form).encode() if form is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"X-DPT-AUTHORIZATION: {self.token}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionClosed(f"connection closed before an answer to {method} {path}")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = (await self.reader.readline()).decode().rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, json.loads(data) if data else None


class Socket:
    """The joined channel; events go to the listeners registered when they arrive."""

    def __init__(self):
        self.listeners = {}
        self.dropped = 0
        self.dropped_keys = set()
        self.reader = self.writer = None

    async def connect(self, url, token):
        parsed = urlparse(url)
        self.reader, self.writer = await asyncio.open_connection(parsed.hostname, parsed.port)
        self.opened = asyncio.get_running_loop().time()
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET {parsed.path or '/'} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await self.reader.readline()
        if b" 101 " not in status:
            raise RuntimeError(f"no upgrade: {status!r}")
        while (await self.reader.readline()) not in (b"\r\n", b""):
            pass
        joined = asyncio.get_running_loop().create_future()
        self.listeners["join-1"] = joined
        await self.send({"action": "joinChannel",
                         "data": {"authorizationToken": token, "correlationId": "join-1"}})
        asyncio.get_running_loop().create_task(self.read_forever())
        reply = await asyncio.wait_for(joined, WAIT_SECONDS)
        if reply.get("status") != 200:
            raise RuntimeError(f"join refused: {reply}")

    async def send(self, message, opcode=1):
        payload = json.dumps(message).encode() if opcode == 1 else message
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)
        await self.writer.drain()

    async def read_forever(self):
        try:
            await self.read_frames()
        except Exception as error:  # the calls then time out; say why
            print(f"socket reader stopped: {error!r}", file=sys.stderr)
            raise

    async def read_frames(self):
        while True:
            first, second = await self.reader.readexactly(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
            if opcode == 9:
                await self.send(payload, opcode=10)
            elif opcode == 8:
                print(f"server closed the socket: {payload!r}", file=sys.stderr)
                return
            elif opcode == 1:
                self.dispatch(json.loads(payload))
            # One frame per turn of the event loop, as browsers dispatch one message event
            # per task: a frame read in the same chunk as an earlier one (a ping, say) waits
            # for the HTTP answers that arrived before it.
            await asyncio.sleep(0)

    def dispatch(self, frame):
        if "correlationId" in frame:
            key = frame["correlationId"]
            event = frame
        else:
            event = frame.get("data", {})
            key = event.get("id")
            # Progress (status 1) is not what a listener waits for.
            if event.get("command_status") == 1:
                return
        listener = self.listeners.pop(key, None)
        if listener is None or listener.done():
            self.dropped += 1
            self.dropped_keys.add(key)
        else:
            listener.set_result(event)

    def listen(self, key):
        if key in self.dropped_keys:
            print(f"the event for {key} was read before its 202", file=sys.stderr)
        future = asyncio.get_running_loop().create_future()
        self.listeners[key] = future
        return future


async def wait(socket, future, key):
    started = asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(future, WAIT_SECONDS)
    except asyncio.TimeoutError:
        socket.listeners.pop(key, None)
        print(f"no event for {key} within {WAIT_SECONDS} s", file=sys.stderr)
        return None
    finally:
        now = asyncio.get_running_loop().time()
        took = now - started
        if took > 1:
            print(f"event for {key} took {took:.1f} s (socket age {now - socket.opened:.1f} s)",
                  file=sys.stderr)


async def worker(http, socket, cycles, summary, payload):
    for _ in range(cycles):
        status, headers, _ = await http.request(
            "POST", "/data-token/reserve-token-space", {"context": "/guide"})
        assert status == 202, status
        command = headers["x-dpt-cab-id"]
        ack = await wait(socket, socket.listen(command), command)
        summary["reserve"]["calls"] += 1
        if ack is None:
            summary["reserve"]["missed"] += 1
            continue
        token = ack["body"]["token"]

        status, headers, _ = await http.request(
            "POST", "/data-token/exchange-data-for-token",
            {"temporaryTokenSpace": token, "data": payload})
        assert status == 202, status
        command = headers["x-dpt-cab-id"]
        ack = await wait(socket, socket.listen(command), command)
        summary["exchange"]["calls"] += 1
        if ack is None or ack.get("command_status") != 2:
            summary["exchange"]["missed"] += 1
            continue

        status, headers, _ = await http.request(
            "POST", "/data-token/request-data", {"token": token})
        assert status == 202, status
        command, request = headers["x-dpt-cab-id"], headers["x-dpt-cab-request-id"]
        ack = socket.listen(command)
        delivery = socket.listen(request)
        ack, delivery = await asyncio.gather(
            wait(socket, ack, command), wait(socket, delivery, request))
        summary["request_data"]["calls"] += 1
        if ack is None or delivery is None or delivery.get("body") != payload:
            summary["request_data"]["missed"] += 1


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--ws", required=True)
    parser.add_argument("--token", required=True, action="append")
    parser.add_argument("--cycles", type=int, default=5000)
    args = parser.parse_args()
    api = urlparse(args.api)
    sockets = []
    for token in args.token:
        socket = Socket()
        await socket.connect(args.ws, token)
        sockets.append(socket)
    summary = {kind: {"calls": 0, "missed": 0} for kind in ("reserve", "exchange", "request_data")}
    payload = base64.b64encode(os.urandom(64)).decode()
    share, extra = divmod(args.cycles, len(args.token))
    await asyncio.gather(*(
        worker(Http(api.hostname, api.port, token), socket,
               share + (1 if i < extra else 0), summary, payload)
        for i, (token, socket) in enumerate(zip(args.token, sockets))))
    summary["dropped_frames"] = sum(socket.dropped for socket in sockets)
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
