"""Interactive demo chat: type lines, see everyone else's.

Lines starting with ``/`` are commands: ``/join CH``, ``/leave CH``, ``/switch CH``,
``/history``, ``/rekey``, ``/quit``. Output lines are plain text, one event per line, so
a script (or a test) can drive the chat through stdin and stdout.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from clients.sdk import Client, ClientError, ClientOptions, Message, RequestError, SessionClosed


def _print(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def format_message(m: Message) -> str:
    return f"[{m.channel}] <{m.sender}> {m.body}"


async def _printer(client: Client, out: TextIO) -> None:
    async for m in client.messages():
        _print(out, format_message(m))


async def run_chat(
    url: str,
    root_public_key: bytes,
    token: str,
    channel: str,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    options: ClientOptions | None = None,
) -> int:
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    try:
        client = await Client.connect(url, root_public_key, token, options)
    except (ClientError, OSError) as exc:
        _print(out, f"* cannot connect: {exc}")
        return 1
    _print(out, f"* connected as {client.user} ({client.suite})")
    current = channel
    await client.join(current)
    _print(out, f"* joined {current}")
    printer = asyncio.create_task(_printer(client, out))
    loop = asyncio.get_running_loop()
    code = 0
    try:
        while True:
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                if line.startswith("/"):
                    cmd, _, arg = line[1:].partition(" ")
                    if cmd == "quit":
                        break
                    if cmd in ("join", "switch") and arg:
                        await client.join(arg)
                        current = arg
                        _print(out, f"* joined {arg}")
                    elif cmd == "leave" and arg:
                        await client.leave(arg)
                        _print(out, f"* left {arg}")
                    elif cmd == "history":
                        for m in await client.history(current):
                            _print(out, "(history) " + format_message(m))
                    elif cmd == "rekey":
                        client.rekey()
                        _print(out, "* rekey started")
                    else:
                        _print(out, "* commands: /join CH, /leave CH, /history, /rekey, /quit")
                    continue
                ack = await client.publish(current, line)
                _print(out, f"* sent {ack['mid']} to {ack['delivered']}")
            except RequestError as exc:
                _print(out, f"* error: {exc.code}: {exc.message}")
    except SessionClosed as exc:
        _print(out, f"* session closed: {exc.code} {exc.reason}")
        code = 1
    finally:
        await client.close()
        printer.cancel()
    _print(out, "* bye")
    return code
