"""A request/reply service on one CurveZMQ ROUTER socket: the loop a server and the dealer share.

Only registered keys get in (mpc.curve.KeyAuthenticator fails closed); each is a Caller with a
role, which the ZAP handler names in every frame's User-Id. A request is a message in
mpc.wire's framing whose header names an action (mpc/actions.py); the service's table says,
for each action, its handler, which roles may ask for it, the inputs the handler takes (read
from the request and checked, in order, before it runs) and whether it runs concurrently (it
may wait for another service, and the loop keeps answering meanwhile).

Every request gets a reply, never a crash, whatever it holds: a message that does not decode,
an unknown action, a caller in another role, an input that fails its check and a refusal of
the handler are refused with an error reply, and anything no check foresaw is logged and
refused too, and so is a message of more than max_message_frames frames or max_message_bytes
bytes in all. The exception: a frame above max_frame_bytes drops its sender (libzmq's
MAXMSGSIZE). Replies echo the request's id ("rid"), so that a client drops replies to
requests it gave up on (mpc/rpc.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
import zmq.asyncio

from twofold.mpc import wire
from twofold.mpc.curve import KeyAuthenticator, KeyPair, make_server_socket

MAX_ERROR_CHARS = 2000  # error replies stay far below the clients' header limit


class RequestError(Exception):
    """A refused request; the message goes back to the caller."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: its role decides which actions it may ask for."""

    role: str
    name: str

    def __str__(self) -> str:  # also its User-Id
        return f"{self.role}:{self.name}"


@dataclass(frozen=True)
class Request:
    caller: Caller
    header: dict
    arrays: list[np.ndarray]


Input = Callable[[Request], Any]  # one argument of a handler, read from a request and checked
Reply = dict | tuple[dict, list[np.ndarray]]  # the reply's fields, and arrays if any


@dataclass(frozen=True)
class Action:
    handler: Callable[..., Reply | Awaitable[Reply]]  # a function or a coroutine function
    roles: tuple[str, ...]
    inputs: tuple[Input, ...] = ()
    concurrent: bool = False  # spawned: it may wait for another service


def caller_name(request: Request) -> str:
    return request.caller.name


def whole_header(request: Request) -> dict:
    """For a handler that checks many fields in an order of its own."""
    return request.header


def received_arrays(request: Request) -> list[np.ndarray]:
    return request.arrays


def header_field(key: str, check: Callable[[Any], Any] = lambda value: value) -> Input:
    """The header's `key` through `check`, which returns the value to use or raises."""
    return lambda request: check(request.header.get(key))


def require_text(header: dict, key: str) -> str:
    value = header.get(key)
    if not isinstance(value, str):
        raise RequestError(f"'{key}' must be a string")
    return value


def text(key: str) -> Input:
    return lambda request: require_text(request.header, key)


class Service:
    """Subclasses set `actions` (the table), `log`, `max_frame_bytes`, `max_message_frames`,
    `max_message_bytes` and `refusals` (their
    own exceptions that refuse a request: logged as a warning, replied with their message
    alone; any other exception is logged with its traceback and replied with its type), and
    may hook into start and stop with _started and _stopping."""

    actions: dict[str, Action]
    log: logging.Logger
    max_frame_bytes: int
    max_message_frames: int
    max_message_bytes: int
    refusals: tuple[type[Exception], ...] = ()
    mandatory_routing = False  # True: a reply to a caller that left is logged, not dropped

    def __init__(self, keys: KeyPair, address: str, callers: dict[bytes, Caller]):
        self.keys = keys
        self.address = address  # where to bind; once bound, the endpoint (its port resolved)
        self.callers = callers  # by public key
        self._by_user_id = {str(caller): caller for caller in callers.values()}
        self._tasks: set[asyncio.Task] = set()
        self._refused: tuple[type[Exception], ...] = (RequestError, *self.refusals)

    def _started(self, context: zmq.asyncio.Context) -> None:
        """Once the socket is bound, before the first request."""

    def _stopping(self) -> None:
        """When the service stops, before its spawned tasks are cancelled."""

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        context = zmq.asyncio.Context()
        authenticator = KeyAuthenticator(
            context, {key: str(caller) for key, caller in self.callers.items()})
        authenticator.start()
        self.socket = context.socket(zmq.ROUTER)
        try:  # from here on everything is closed whatever fails, a bind to a taken port too:
            # a context left with open sockets blocks whoever collects it
            self.socket.linger = 0
            if self.mandatory_routing:
                self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.socket.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)
            make_server_socket(self.socket, self.keys)
            self.socket.bind(self.address)
            self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
            self._started(context)
            if ready is not None:
                ready.set()
            while True:
                await self._receive(await self.socket.recv_multipart(copy=False))
        finally:
            self._stopping()
            for task in self._tasks:
                task.cancel()
            authenticator.stop()
            self.socket.close(0)
            context.term()

    def spawn(self, coroutine) -> None:
        """Run a coroutine beside the loop; it is cancelled when the service stops."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive(self, frames: list) -> None:
        identity, message = frames[0].bytes, frames[1:]
        caller = self._by_user_id[message[0].get("User-Id")]
        try:
            wire.check_size(message, self.max_message_frames, self.max_message_bytes)
            header, arrays = wire.decode(message)
        except Exception as error:  # whatever the bytes, the loop keeps serving
            self.log.warning("refused a malformed message from %s: %s", caller, error)
            refusal = {"ok": False, "error": f"malformed message: {error}"[:MAX_ERROR_CHARS]}
            rid = wire.request_id(message)
            if rid is not None:  # so that the caller's client takes the refusal as its answer
                refusal["rid"] = rid
            await self._send(identity, caller, refusal)
            return
        name = header.get("action")
        action = self.actions.get(name) if isinstance(name, str) else None
        reply = self._reply(identity, Request(caller, header, arrays), action)
        if action is not None and action.concurrent:
            self.spawn(reply)
        else:
            await reply

    async def _reply(self, identity: bytes, request: Request, action: Action | None) -> None:
        name = request.header.get("action")
        arrays_out: list[np.ndarray] = []
        try:
            response = await self._dispatch(request, name, action)
            if isinstance(response, tuple):
                response, arrays_out = response
            reply = {"ok": True, **response}
        except self._refused as error:
            self.log.warning("refused %.40r from %s: %s", name, request.caller, error)
            reply = {"ok": False, "error": str(error)[:MAX_ERROR_CHARS]}
        except Exception as error:  # an input no check foresaw: refuse it and keep serving
            self.log.exception("failed %.40r from %s", name, request.caller)
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]}
        if "rid" in request.header:
            reply["rid"] = request.header["rid"]
        await self._send(identity, request.caller, reply, arrays_out)

    async def _dispatch(self, request: Request, name, action: Action | None) -> Reply:
        if action is None:
            raise RequestError(f"unknown action {name!r:.40}")
        if request.caller.role not in action.roles:
            raise RequestError(f"{request.caller.name} may not {name!r:.40}")
        response = action.handler(*(take(request) for take in action.inputs))
        return await response if inspect.isawaitable(response) else response

    async def _send(self, identity: bytes, caller: Caller, reply: dict, arrays=()) -> None:
        try:
            await self.socket.send_multipart([identity, *wire.encode(reply, arrays)],
                                             copy=False)
        except zmq.ZMQError as error:  # the caller left (mandatory routing): serve the others
            self.log.warning("could not answer %s: %s", caller, error)
