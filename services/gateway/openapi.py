"""JSON Schemas for proto messages, following the proto3 JSON mapping, for the OpenAPI document.

The HTTP API speaks proto3 JSON (lowerCamelCase names, 64-bit integers as strings, enums by
name), so its schema is derived from the descriptors rather than written twice. What protos
cannot say is added here: which fields a request needs (proto3 has no required fields; an empty
string is an absent one), the shape of file URIs, and that page tokens only come from answers
(format `page-token`: a client cannot make one up).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

from services.common.hashing import BY_LENGTH, EMPTY_HASH, HEX_LENGTH, SUPPORTED, DigestFunction
from services.gateway.front import API_KEY_HEADER

Schema = dict[str, Any]

_YEAR = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"  # what protobuf's Timestamp can hold
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time", "pattern": (
        f"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\\.[0-9]{{1,9}})?(Z|[+-][0-9]{{2}}:[0-9]{{2}})$")},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]{1,11}(\\.[0-9]{1,9})?s$", "example": "1.5s"},
    "google.protobuf.Any": {"type": "object"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
}
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
_INT64_BOUND = 10**18 - 1
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT32,
          FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}


_NON_EMPTY: Schema = {"minLength": 1}
_INSTANCE = r"([A-Za-z0-9_~@+=,:-][A-Za-z0-9._~@+=,:-]{0,62}/){0,3}"
_HOST = r"(bytestream://[A-Za-z0-9.-]+(:[0-9]{1,5})?/)?"


def _digest(function: DigestFunction, segment: str) -> str:
    return rf"{segment}([0-9a-f]{{{HEX_LENGTH[function]}}}/[1-9][0-9]{{0,14}}|{EMPTY_HASH[function]}/0)"


# `<function>/<hash>/<size>` for every function, or `<hash>/<size>` whose length names the function
_HASH_SIZE = "(" + "|".join([_digest(f, f"{f.label}/") for f in DigestFunction]
                            + [_digest(f, "") for f in BY_LENGTH.values()]) + ")$"
_FUNCTIONS = f"[<function>/]<hash>/<size> (function: {SUPPORTED}; without it the hash length decides, 64 = sha256)"
_FILE_URI = {"pattern": f"^{_HOST}{_INSTANCE}(blobs|compressed-blobs/zstd)/(ac/)?{_HASH_SIZE}",
             "description": f"bytestream://host/[instance/]blobs/{_FUNCTIONS}; compressed-blobs/zstd/ for a zstd "
                            "stream; blobs/ac/ for an action result (the host is not dialled)"}
_RANGE_URI = {"pattern": f"^{_HOST}{_INSTANCE}blobs/{_HASH_SIZE}",
              "description": f"bytestream://host/[instance/]blobs/{_FUNCTIONS} (an uncompressed CAS blob)"}
_OFFSET = {"pattern": "^[0-9]{1,18}$", "minimum": 0, "description": "byte offset; end 0 means the blob's end"}
# per message: the fields a request needs, and what a field's schema adds to the proto's
_REQUIRED: dict[str, tuple[str, ...]] = {
    **{f"api.v1.{m}Request": ("selector",) for m in ("GetInvocation", "GetLog", "GetTarget", "GetAction")},
    **{f"api.v1.{m}Selector": ("invocationId",) for m in ("Log", "Target", "Action")},
    **{f"api.v1.{m}Request": ("uri",) for m in ("GetFile", "GetFileRange", "DeleteFile")},
}
_FIELDS: dict[tuple[str, str], Schema] = {
    **{(f"api.v1.{m}Selector", "invocationId"): _NON_EMPTY for m in ("Log", "Target", "Action")},
    ("api.v1.GetFileRequest", "uri"): _FILE_URI,
    ("api.v1.DeleteFileRequest", "uri"): _FILE_URI,
    ("api.v1.GetFileRangeRequest", "uri"): _RANGE_URI,
    **{("api.v1.GetFileRangeRequest", bound): _OFFSET for bound in ("start", "end")},
}
_REQUIRED.update({"bbapi.api.v1.GetTargetHistoryRequest": ("label",),
                  "bbapi.api.v1.GetCacheStatsRequest": ("invocationId",)})
_FIELDS.update({("bbapi.api.v1.GetTargetHistoryRequest", "label"): _NON_EMPTY,
                ("bbapi.api.v1.GetCacheStatsRequest", "invocationId"): _NON_EMPTY})
_FIELDS.update({(f"bbapi.api.v1.{m}Request", "pageSize"): {"minimum": 0}
                for m in ("SearchInvocations", "GetTargetHistory", "GetFlakyTests")})
_ONE_OF_REQUIRED = {"api.v1.InvocationSelector": ("invocationId", "commitSha")}
PAGE_TOKEN: Schema = {"type": "string", "format": "page-token",
                      "description": "next_page_token of the previous answer; empty (or absent) for the first page"}


def ref(descriptor: Descriptor) -> Schema:
    return {"$ref": f"#/components/schemas/{descriptor.full_name}"}


def _scalar(field: FieldDescriptor, components: dict[str, Schema]) -> Schema:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        return message_schema(field.message_type, components)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        # proto3 JSON reads an enum by name or by number
        values = field.enum_type.values
        return {"type": ["string", "integer"], "enum": [*(v.name for v in values), *(v.number for v in values)]}
    if kind in _INT64:  # any value of 18 digits fits; a JSON number is read too
        return {"type": ["string", "integer"], "pattern": "^-?[0-9]{1,18}$", "minimum": -_INT64_BOUND,
                "maximum": _INT64_BOUND, "description": "64-bit integer, as a string"}
    if kind in _INT32:
        unsigned = kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32)
        low, high = (0, 2**32 - 1) if unsigned else (-(2**31), 2**31 - 1)
        return {"type": "integer", "minimum": low, "maximum": high}
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number"}
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    return {"type": "string"}


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def message_schema(descriptor: Descriptor, components: dict[str, Schema]) -> Schema:
    """A $ref to the message's schema, adding it (and everything it uses) to `components`."""
    if descriptor.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[descriptor.full_name]
    if descriptor.full_name not in components:
        components[descriptor.full_name] = {}  # placeholder: recursive messages refer to it
        properties: Schema = {}
        for field in descriptor.fields:
            if field.message_type is not None and _is_map(field):
                value = field.message_type.fields_by_name["value"]
                schema: Schema = {"type": "object", "additionalProperties": _scalar(value, components)}
            elif field.is_repeated:
                schema = {"type": "array", "items": _scalar(field, components)}
            elif field.name == "page_token":
                schema = PAGE_TOKEN
            else:
                schema = _scalar(field, components)
            schema = {**schema, **_FIELDS.get((descriptor.full_name, field.json_name), {})}
            required = field.json_name in _REQUIRED.get(descriptor.full_name, ())
            properties[field.json_name] = schema if required else _nullable(schema)
        components[descriptor.full_name] = _object(descriptor.full_name, properties)
    return ref(descriptor)


def _nullable(schema: Schema) -> Schema:
    """proto3 JSON reads null as a field's default, so an optional field may be null.

    A schema with a format (a Timestamp's date-time, a page token) gets null as an alternative of
    its own, so no validator applies the format to null.
    """
    if "$ref" in schema or "format" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    out = {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]} if kind else dict(schema)
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def body_required(descriptor: Descriptor) -> bool:
    """Whether a request needs a body: an empty one is an empty message, fine unless a field is required."""
    return descriptor.full_name in _REQUIRED


def _object(name: str, properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if name in _REQUIRED:
        schema["required"] = list(_REQUIRED[name])
    if name in _ONE_OF_REQUIRED:
        schema["anyOf"] = [{"required": [field], "properties": {field: {"type": "string", **_NON_EMPTY}}}
                           for field in _ONE_OF_REQUIRED[name]]
    return schema


# The errors each method answers beyond those of every call (400, 401, 413, 500, 503); a method not
# listed may refuse a key without the capability it needs (403).
_ERRORS: dict[str, tuple[int, ...]] = {
    "GetInvocation": (403,), "GetLog": (403, 404), "GetTarget": (403, 404), "GetAction": (403, 404),
    "GetFile": (403, 404), "GetFileRange": (403, 404), "DeleteFile": (403,), "GetAuditLog": (403,),
    "ExecuteWorkflow": (501,), "Run": (501,), "CreateUserApiKey": (501,), "GetCacheStats": (403, 404),
}
_EVERY_CALL = (400, 401, 413, 500, 503)
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: Schema = {"type": "object", "required": ["code", "message"], "additionalProperties": False,
                        "properties": {"code": {"type": "integer", "description": "gRPC status code number"},
                                       "message": {"type": "string"}}}
SECURITY_SCHEMES = {"ApiKeyHeader": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
                    "Bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"}}


def responses(method: MethodDescriptor, components: dict[str, Schema]) -> dict[str, Any]:
    """The method's answer and every error status it can give, each with the `{code, message}` body."""
    if method.server_streaming:
        ok: Schema = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    else:
        ok = {"application/json": {"schema": message_schema(method.output_type, components)}}
    errors = {str(status): {"description": HTTPStatus(status).phrase,
                            "content": {"application/json": {"schema": _ERROR_REF}}}
              for status in sorted({*_EVERY_CALL, *_ERRORS.get(method.name, (403,))})}
    return {"200": {"description": "OK", "content": ok}, **errors}


_DOWNLOAD_ERRORS = (304, 400, 401, 403, 404, 416, 500, 503)


def download_operation() -> dict[str, Any]:
    """The OpenAPI operation of `GET /file/download` (services.gateway.download)."""
    def header(name: str, description: str) -> Schema:
        return {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
                "description": description}

    binary = {"schema": {"type": "string", "format": "binary"}}
    errors = {str(status): {"description": HTTPStatus(status).phrase,
                            "content": {"application/json": {"schema": _ERROR_REF}}}
              for status in _DOWNLOAD_ERRORS if status != 304}
    return {
        "description": "The file's bytes as an attachment (`Content-Disposition`), named `filename` or the "
                       "digest's hash. Uncompressed CAS blobs carry a strong `ETag` and take one byte range "
                       "(`Range`, `If-Range`; 206, or 416 past the end), so `curl -C -` and `wget -c` resume. "
                       "zstd and action-result URIs are sent whole. The key goes in a header, never the URL: "
                       "`api_key` in the query is refused with 400.",
        "parameters": [
            {"name": "bytestream_url", "in": "query", "required": True,
             "schema": {"type": "string", **_FILE_URI}},
            {"name": "filename", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "the name to save the file under (directory parts are dropped)"},
            header("Range", "one byte range, e.g. bytes=1000- (others are ignored: the whole file is sent)"),
            header("If-None-Match", "an ETag of an earlier answer: 304 when it still matches"),
            header("If-Range", "an ETag: the range is served only if the file still has it"),
        ],
        "responses": {
            "200": {"description": "OK", "content": {"application/octet-stream": binary, "application/zstd": binary}},
            "206": {"description": "Partial Content", "content": {"application/octet-stream": binary}},
            "304": {"description": "Not Modified"},
            **errors,
        },
        "security": [{scheme: []} for scheme in SECURITY_SCHEMES],
    }
