"""The floor for a Build Event Service: a bare grpcio server that acknowledges every event at once, storing nothing.

    python bench/bes_sink.py PORT        (bench/ingest.py starts it as the peer column)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from google.protobuf import empty_pb2

from services.gen.google.devtools.build.v1 import publish_build_event_pb2 as pbe_pb2
from services.gen.google.devtools.build.v1 import publish_build_event_pb2_grpc as pbe_grpc


class Sink(pbe_grpc.PublishBuildEventServicer):
    def PublishLifecycleEvent(self, request: pbe_pb2.PublishLifecycleEventRequest,
                              context: grpc.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    def PublishBuildToolEventStream(self, requests: Iterator[pbe_pb2.PublishBuildToolEventStreamRequest],
                                    context: grpc.ServicerContext
                                    ) -> Iterator[pbe_pb2.PublishBuildToolEventStreamResponse]:
        for request in requests:
            ordered = request.ordered_build_event
            yield pbe_pb2.PublishBuildToolEventStreamResponse(stream_id=ordered.stream_id,
                                                              sequence_number=ordered.sequence_number)


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.max_receive_message_length", 64 << 20)])
    pbe_grpc.add_PublishBuildEventServicer_to_server(Sink(), server)
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
