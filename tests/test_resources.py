"""Resource names and digests: what the edge accepts and what it refuses, with messages."""

import hashlib

import blake3
import pytest

from services.common.errors import InvalidArgument, Unimplemented
from services.common.hashing import DigestFunction, function_of
from services.common.resources import (
    SHA256_EMPTY,
    BlobResource,
    Compressor,
    Digest,
    check_digest,
    check_digests,
    parse_read_resource,
    parse_write_resource,
    resource_path,
)

H = "ab" * 32
SHA1 = "cd" * 20
SHA512 = "ef" * 64
BLAKE3 = DigestFunction.BLAKE3
BLAKE3_EMPTY = blake3.blake3(b"").hexdigest()


@pytest.mark.parametrize(("name", "expected"), [
    (f"blobs/{H}/12", BlobResource("", Digest(H, 12))),
    (f"my/instance/blobs/{H}/12", BlobResource("my/instance", Digest(H, 12))),
    (f"compressed-blobs/zstd/{H}/12", BlobResource("", Digest(H, 12), Compressor.ZSTD)),
    (f"x/compressed-blobs/zstd/{H}/0".replace(H, SHA256_EMPTY), BlobResource("x", Digest(SHA256_EMPTY, 0),
                                                                               Compressor.ZSTD)),
    (f"blobs/blake3/{H}/12", BlobResource("", Digest(H, 12), function=BLAKE3)),
    (f"i/compressed-blobs/zstd/blake3/{BLAKE3_EMPTY}/0", BlobResource("i", Digest(BLAKE3_EMPTY, 0), Compressor.ZSTD,
                                                                     BLAKE3)),
    (f"blobs/sha1/{SHA1}/3", BlobResource("", Digest(SHA1, 3), function=DigestFunction.SHA1)),
    (f"blobs/sha512/{SHA512}/3", BlobResource("", Digest(SHA512, 3), function=DigestFunction.SHA512)),
])
def test_read_names(name: str, expected: BlobResource) -> None:
    assert parse_read_resource(name) == expected
    assert resource_path(expected) == name


@pytest.mark.parametrize(("name", "expected"), [
    (f"uploads/5d1b/blobs/{H}/12", BlobResource("", Digest(H, 12))),
    (f"inst/uploads/5d1b/blobs/{H}/12/extra/metadata", BlobResource("inst", Digest(H, 12))),
    (f"uploads/5d1b/compressed-blobs/zstd/{H}/99", BlobResource("", Digest(H, 99), Compressor.ZSTD)),
    (f"uploads/5d1b/blobs/blake3/{H}/12/meta", BlobResource("", Digest(H, 12), function=BLAKE3)),
    (f"uploads/5d1b/compressed-blobs/zstd/blake3/{H}/9", BlobResource("", Digest(H, 9), Compressor.ZSTD, BLAKE3)),
])
def test_write_names(name: str, expected: BlobResource) -> None:
    assert parse_write_resource(name) == expected


@pytest.mark.parametrize(("name", "message"), [
    ("", "empty"),
    (f"blobs/{H}", "expected"),
    (f"blobs/{H}/-1", "non-negative"),
    (f"blobs/{H}/1/2", "trailing"),
    (f"blobs/{H.upper()}/1", "64 lowercase hex"),
    (f"../blobs/{H}/1", "'..'"),
    (f"a//b/blobs/{H}/1", "empty"),
    (f"blobs/md5/{H}/1", "digest function 'md5' is not supported"),
    (f"blobs/blake3/{H[:-2]}/1", "64 lowercase hex characters \\(blake3\\)"),
    (f"blobs/sha1/{H}/1", "40 lowercase hex"),
    (f"blobs/blake3/{SHA256_EMPTY}/0", "not the empty blob's blake3 hash"),
    (f"compressed-blobs/identity/{H}/1", "use 'blobs/'"),
    (f"nothing/{H}/1", "no blobs"),
    (f"blobs/{'0' * 64}/0", "not the empty blob"),
])
def test_bad_read_names(name: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_read_resource(name)


def test_unknown_compressor_is_unimplemented() -> None:
    with pytest.raises(Unimplemented, match="lz4"):
        parse_read_resource(f"compressed-blobs/lz4/{H}/1")


def test_write_name_needs_uuid_and_kind() -> None:
    for name in (f"uploads/blobs/{H}/1", f"uploads//blobs/{H}/1", f"blobs/{H}/1"):
        with pytest.raises(InvalidArgument):
            parse_write_resource(name)


def test_digest_checks() -> None:
    assert check_digest(SHA256_EMPTY, 0) == Digest(SHA256_EMPTY, 0)
    with pytest.raises(InvalidArgument, match="negative"):
        check_digest(H, -1)


def test_checking_many_digests_answers_as_checking_each() -> None:
    good = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]
    bad_hashes = ["A" * 64, "a" * 63, "a" * 62 + " a", "g" * 64, "a" * 63 + "\n", "ab" * 32 + "0"]
    sizes = [1, 2, 3, 4, 5]
    assert check_digests(good, sizes) == [check_digest(h, n) for h, n in zip(good, sizes, strict=True)]
    assert check_digests([], []) == []
    assert check_digests([SHA256_EMPTY, good[0]], [0, 7]) == [Digest(SHA256_EMPTY, 0), Digest(good[0], 7)]
    for bad in bad_hashes:
        with pytest.raises(InvalidArgument, match="invalid digest hash"):
            check_digests([good[0], bad], [1, 1])
    with pytest.raises(InvalidArgument, match="must not be negative"):
        check_digests(good[:2], [1, -1])
    with pytest.raises(InvalidArgument, match="size 0 but is not the empty blob"):
        check_digests(good[:1], [0])


def test_without_a_name_the_hash_length_decides() -> None:
    assert parse_read_resource(f"blobs/{SHA1}/1").function is DigestFunction.SHA1
    assert parse_read_resource(f"blobs/{SHA512}/1").function is DigestFunction.SHA512
    assert parse_read_resource(f"blobs/{H}/1").function is DigestFunction.SHA256  # BLAKE3 must say so
    assert resource_path(parse_read_resource(f"blobs/{SHA1}/1")) == f"blobs/sha1/{SHA1}/1"


def test_a_request_names_its_function_or_its_hashes_imply_it() -> None:
    assert function_of(9, [H]) is BLAKE3
    assert function_of(0, [H]) is DigestFunction.SHA256
    assert function_of(0, iter([SHA1, H])) is DigestFunction.SHA1  # the first digest decides
    assert function_of(0, []) is DigestFunction.SHA256
    with pytest.raises(InvalidArgument, match="digest function 3 is not supported"):  # MD5
        function_of(3, [H])


def test_digests_are_checked_with_their_function() -> None:
    assert check_digests([H, H], [1, 2], BLAKE3) == [Digest(H, 1), Digest(H, 2)]
    assert check_digests([BLAKE3_EMPTY], [0], BLAKE3) == [Digest(BLAKE3_EMPTY, 0)]
    assert check_digests([SHA1], [5], DigestFunction.SHA1) == [Digest(SHA1, 5)]
    with pytest.raises(InvalidArgument, match="want 40 lowercase hex"):
        check_digests([H], [1], DigestFunction.SHA1)
    with pytest.raises(InvalidArgument, match="empty blob's blake3 hash"):
        check_digests([SHA256_EMPTY], [0], BLAKE3)
