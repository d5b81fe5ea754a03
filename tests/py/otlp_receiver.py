"""A real OTLP/HTTP-protobuf receiver (oteltap) for lav's telemetry tests.

usage: otlp_receiver.py PORT
Prints "ready" once listening, collects every span until stdin closes, then waits
a moment for stragglers and prints one JSON list of the spans: name, ids (hex),
parent id, kind, status code, and attributes.
"""

import asyncio
import json
import sys

from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


async def main(port: int) -> None:
    spans = []
    settings = OtelTapHttpProtobufReceiverSettings(http_port=port)
    async with OtelTapHttpProtobufReceiver(settings) as receiver:

        async def collect():
            async for s in receiver.stream_traces():
                spans.append(
                    {
                        "name": s.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "kind": int(s.kind),
                        "status": int(s.status.code),
                        "start_ns": int(s.start_time_unix_nano),
                        "end_ns": int(s.end_time_unix_nano),
                        "attributes": {a.key: value(a.value) for a in s.attributes},
                    }
                )

        task = asyncio.create_task(collect())
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await asyncio.sleep(0.5)
        task.cancel()
    print(json.dumps(spans), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
