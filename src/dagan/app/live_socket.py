"""The live page's WebSocket, `/api/live`: camera frames in, animated frames out, stale frames dropped.

Client → server
    text   {"type": "options", "model": NAME, "relative": bool, "adapt_scale": bool}  (before a source)
    binary b"S" + image bytes                     the source photo; (re)starts the session
    binary b"F" + seq (uint32, big-endian) + JPEG  one camera frame
    text   {"type": "neutral"}                    the next frame becomes the neutral pose
Server → client
    text   {"type": "ready", "model", "size"} | {"type": "error", "error"} |
           {"type": "stats", "processed", "dropped"}
    binary seq (uint32) + server time in µs (uint32) + JPEG of the animated frame

A reader task takes every message as it arrives and puts frames in a `LatestFrame`; a worker task
animates whatever is newest, so a slow model drops frames instead of queueing them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time

from fastapi import FastAPI, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from dagan.app.live import LatestFrame, LiveSession, decode_jpeg, encode_jpeg
from dagan.errors import DaganError

log = logging.getLogger("dagan.serve")
MAX_MESSAGE = 8 * 2**20
MAX_SOURCE_SIDE = 8000


class _Live:
    """The state of one connection."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.registry = ws.app.state.registry
        self.options = {"model": None, "relative": True, "adapt_scale": True}
        self.session: LiveSession | None = None
        self.mailbox = LatestFrame()
        self.processed = 0

    async def send_json(self, payload: dict) -> None:
        await self.ws.send_text(json.dumps(payload))

    async def on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            raise DaganError("control messages must be JSON") from None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "neutral":
            if self.session is not None:
                self.session.set_neutral()
        elif kind == "options":
            for key in ("relative", "adapt_scale"):
                if key in message:
                    self.options[key] = bool(message[key])
            if "model" in message:
                self.options["model"] = self.registry.get(message["model"] or None).name
        else:
            raise DaganError(f"unknown control message type {kind!r}; expected options or neutral")

    async def on_source(self, data: bytes) -> None:
        def start() -> LiveSession:
            photo = decode_jpeg(data, "the source photo", max_side=MAX_SOURCE_SIDE)
            runtime = self.registry.pipeline(self.options["model"], "fp32").runtime
            return LiveSession(runtime, photo, relative=self.options["relative"],
                               adapt_scale=self.options["adapt_scale"])

        self.session = None
        self.session = await run_in_threadpool(start)
        model = self.registry.get(self.options["model"]).name
        await self.send_json({"type": "ready", "model": model, "size": self.session.size})

    async def on_binary(self, data: bytes) -> None:
        if data[:1] == b"S":
            await self.on_source(data[1:])
        elif data[:1] == b"F" and len(data) > 5:
            self.mailbox.put((data[1:5], data[5:]))
        else:
            raise DaganError("binary messages start with b'S' (source photo) or b'F' + seq (camera frame)")

    async def work(self) -> None:
        """Animate the newest frame, forever (cancelled when the socket closes)."""
        last_stats = time.monotonic()
        while True:
            seq, jpeg = await self.mailbox.get()
            session = self.session
            if session is None:
                continue
            start = time.perf_counter()
            try:
                out = await run_in_threadpool(lambda: encode_jpeg(session.process(decode_jpeg(jpeg))))
            except DaganError as exc:
                await self.send_json({"type": "error", "error": str(exc)})
                continue
            except Exception as exc:  # a bug: logged in full here, one line for the client
                log.exception("live frame failed")
                await self.send_json({"type": "error", "error": f"internal error ({type(exc).__name__})"})
                continue
            micros = min(int((time.perf_counter() - start) * 1e6), 2**32 - 1)
            self.processed += 1
            await self.ws.send_bytes(seq + struct.pack(">I", micros) + out)
            if time.monotonic() - last_stats > 1.0:
                last_stats = time.monotonic()
                await self.send_json({"type": "stats", "processed": self.processed,
                                      "dropped": self.mailbox.dropped})


async def _serve(ws: WebSocket) -> None:
    state = ws.app.state
    if state.live_sessions >= state.config.max_live:
        await ws.close(code=1013, reason=f"at most {state.config.max_live} live sessions (--max-live)")
        return
    await ws.accept()
    state.live_sessions += 1
    live = _Live(ws)
    worker = asyncio.create_task(live.work())
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                if message.get("bytes") is not None:
                    if len(message["bytes"]) > MAX_MESSAGE:
                        raise DaganError(f"messages are limited to {MAX_MESSAGE // 2**20} MB")
                    await live.on_binary(message["bytes"])
                elif message.get("text") is not None:
                    await live.on_text(message["text"])
            except DaganError as exc:
                await live.send_json({"type": "error", "error": str(exc)})
    except WebSocketDisconnect:
        pass
    finally:
        worker.cancel()
        state.live_sessions -= 1


def add_route(app: FastAPI) -> None:
    app.add_api_websocket_route("/api/live", _serve)
