"""The HTTP/2 `:authority` of a grpc.aio call, which grpcio keeps but does not expose yet.

Bazel before 5 sends an API key given as `grpc://KEY@host` only as userinfo in `:authority`.
grpcio stores it in the call details of the server's per-call state (`RPCState.details.host`,
a grpc_slice) and exposes it in no public API; grpc/grpc#42651 adds the accessor. Until it
ships we read the slice directly, but only after a calibration call at startup has proven the
layout: a known call is made to ourselves and the slice before `host` must hold exactly its
method name. If anything does not match (another grpcio build), userinfo keys are disabled with
a warning and every other way of sending a key keeps working.

grpc_slice layout (64-bit): {refcount*; union {struct {size_t length; uint8_t* bytes}
refcounted; struct {uint8_t length; uint8_t bytes[23]} inlined}} = 32 bytes.
"""

from __future__ import annotations

import ctypes
import gc
import logging
from typing import Any

log = logging.getLogger(__name__)

_SLICE = 32
_CANDIDATE_METHOD_OFFSETS = (32, 40, 24, 48)


class AuthorityReader:
    def __init__(self) -> None:
        self.method_offset: int | None = None
        self.state_size: int | None = None

    @staticmethod
    def _state(context: Any) -> Any | None:
        for referent in gc.get_referents(context):
            if type(referent).__name__ == "RPCState":
                return referent
        return None

    @staticmethod
    def _slice(address: int) -> bytes:
        refcount = ctypes.c_void_p.from_address(address).value
        if refcount is None:  # inlined: one length byte, then up to 23 bytes
            length = ctypes.c_uint8.from_address(address + 8).value
            return ctypes.string_at(address + 9, min(length, 23))
        length = ctypes.c_size_t.from_address(address + 8).value
        pointer = ctypes.c_void_p.from_address(address + 16).value
        if pointer is None or length > 4096:
            raise ValueError("implausible slice")
        return ctypes.string_at(pointer, length)

    def calibrate(self, context: Any, method: str, authority: str) -> bool:
        """Learn the layout from a call whose method and authority we chose ourselves."""
        state = self._state(context)
        if state is None:
            return False
        size = type(state).__basicsize__
        for offset in _CANDIDATE_METHOD_OFFSETS:
            if offset + 2 * _SLICE > size:
                continue
            # only the inlined form is safe to probe: a short method name never dereferences
            if ctypes.c_void_p.from_address(id(state) + offset).value is not None:
                continue
            try:
                if self._slice(id(state) + offset) != method.encode():
                    continue
                if self._slice(id(state) + offset + _SLICE) != authority.encode():
                    continue
            except ValueError:
                continue
            self.method_offset, self.state_size = offset, size
            return True
        return False

    def read(self, context: Any) -> str:
        if self.method_offset is None:
            return ""
        state = self._state(context)
        if state is None or type(state).__basicsize__ != self.state_size:
            return ""
        try:
            return self._slice(id(state) + self.method_offset + _SLICE).decode("utf-8", "replace")
        except ValueError:
            return ""
