"""Interactive demo chat: type lines, see everyone else's.

Lines starting with ``/`` are commands: ``/join CH``, ``/leave CH``, ``/switch CH``,
``/history``, ``/rekey``, ``/quit``. Output lines are plain text, one event per line, so
a script (or a test) can drive the chat through stdin and stdout.
"""

from __future__ import annotations

import asyncio
import sys
import unicodedata
from typing import TextIO

from websockets.exceptions import WebSocketException

from clients.sdk import Client, ClientError, ClientOptions, Message, RequestError, SessionClosed

# Bidirectional overrides and isolates (category Cf, listed for clarity): they reorder what
# the terminal shows, so "<admin>" can appear where the sender wrote something else.
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
# Control (C0, DEL, C1), format (zero-width, bidi marks), line/paragraph separators, lone
# surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(c: str) -> str:
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    o = ord(c)
    if o <= 0xFF:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def safe(text: str) -> str:
    """``text`` with every character a terminal would act on shown as an escape: ESC (and so
    every ANSI/OSC sequence), CR, LF, TAB, DEL, C1 controls, bidi overrides. Peer-controlled
    strings (user names, channel names, bodies, server messages) go through this before they
    reach the terminal, so a message cannot forge lines, retitle the window or clear it."""
    if text.isprintable() and text.isascii():
        return text  # the common case: nothing to escape
    return "".join(
        _escape_char(c)
        if ord(c) in _BIDI or unicodedata.category(c) in _UNSAFE_CATEGORIES
        else c
        for c in text
    )


def _print(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def format_message(m: Message) -> str:
    return f"[{safe(m.channel)}] <{safe(m.sender)}> {safe(m.body)}"


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
    except (ClientError, OSError, WebSocketException, ValueError, TimeoutError) as exc:
        # OSError: refused/unreachable; WebSocketException: not a ws:// URL (InvalidURI),
        # not a WebSocket server; ValueError: a malformed URL.
        _print(out, f"* cannot connect: {safe(str(exc)) or type(exc).__name__} ({safe(url)})")
        return 1
    _print(out, f"* connected as {safe(client.user)} ({client.suite})")
    current = channel
    try:
        await client.join(current)
    except (RequestError, SessionClosed) as exc:
        _print(out, f"* cannot join {safe(current)}: {safe(str(exc))}")
        await client.close()
        return 1
    _print(out, f"* joined {safe(current)}")
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
                        _print(out, f"* joined {safe(arg)}")
                    elif cmd == "leave" and arg:
                        await client.leave(arg)
                        _print(out, f"* left {safe(arg)}")
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
                _print(out, f"* sent {safe(str(ack['mid']))} to {safe(str(ack['delivered']))}")
            except RequestError as exc:
                _print(out, f"* error: {safe(exc.code)}: {safe(exc.message)}")
    except SessionClosed as exc:
        _print(out, f"* session closed: {exc.code} {safe(str(exc.reason))}")
        code = 1
    finally:
        await client.close()
        printer.cancel()
    _print(out, "* bye")
    return code
