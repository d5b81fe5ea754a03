"""Drives a lav MCP server with the official Python MCP SDK.

usage: mcp_roundtrip.py TARGET CALLS_JSON
  TARGET: an http(s) URL of a streamable HTTP endpoint, or a JSON list
          [command, arg, ...] to start and speak to over stdio.
  CALLS_JSON: a JSON list of {"name": ..., "arguments": {...}}.
Prints one JSON object: the server's name, its tools, and each call's result.
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters


async def main(target: str, calls: list) -> dict:
    if target.startswith("http"):
        server = target
    else:
        cmd = json.loads(target)
        server = StdioServerParameters(command=cmd[0], args=cmd[1:])
    out = {"results": []}
    async with Client(server) as client:
        listed = await client.list_tools()
        out["tools"] = {
            t.name: {"description": t.description, "input_schema": t.input_schema}
            for t in listed.tools
        }
        for call in calls:
            r = await client.call_tool(call["name"], call["arguments"])
            text = "\n".join(c.text for c in r.content if getattr(c, "text", None) is not None)
            out["results"].append(
                {"name": call["name"], "is_error": bool(r.is_error), "text": text}
            )
    return out


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
    print(json.dumps(result))
