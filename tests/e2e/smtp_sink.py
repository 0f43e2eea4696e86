"""An upstream SMTP server for popgate's end-to-end tests, on aiosmtpd.

Usage: smtp_sink.py DIR [REPLY]

Listens on 127.0.0.1 on a free port and prints "PORT <n>" once it is ready.
Each accepted message is recorded as DIR/<n>.json (envelope sender and
recipients) and DIR/<n>.eml (the message octets exactly as received, after
dot-unstuffing). With REPLY (e.g. "550 5.7.1 Go away" or "451 4.3.0 Later")
every message is answered with it at the end of DATA and nothing is recorded.
"""

import asyncio
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory, reply):
        self.directory = directory
        self.reply = reply
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.reply:
            return self.reply
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 OK queued"


async def main():
    directory = sys.argv[1]
    reply = sys.argv[2] if len(sys.argv) > 2 else None
    sink = Sink(directory, reply)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, decode_data=False, enable_SMTPUTF8=False, hostname="sink.test"),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
