"""An upstream SMTP server for popgate's end-to-end tests, on aiosmtpd.

Usage: smtp_sink.py DIR [--reply TEXT] [--tls plain|starttls|smtps
                     --cert PEM --key PEM] [--auth USER:PASSWORD] [--smtputf8]

Listens on 127.0.0.1 on a free port and prints "PORT <n>" once it is ready.
Each accepted message is recorded as DIR/<n>.json (envelope sender and
recipients, the relay login if any, whether TLS was on), DIR/<n>.eml (the
message octets exactly as received, after dot-unstuffing) and DIR/<n>.smtp
(the MAIL and RCPT commands of the message, one a line, exactly as they
arrived but for the keyword's case). With --reply
(e.g. "550 5.7.1 Go away" or "451 4.3.0 Later") every message is answered
with it at the end of DATA and nothing is recorded. With --tls starttls the
sink refuses mail until STARTTLS; with smtps it speaks TLS from the start.
With --auth it requires that login before MAIL. With --smtputf8 it offers
SMTPUTF8 (as Postfix does by default) and takes UTF-8 addresses.
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import warnings

from aiosmtpd.smtp import SMTP, AuthResult


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, keeping each MAIL and RCPT command as it arrived
    (aiosmtpd itself keeps only the parsed addresses, unquoted where it can)."""

    async def smtp_MAIL(self, arg):
        self.envelope.commands = [f"MAIL {arg}"]
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        self.envelope.commands = getattr(self.envelope, "commands", []) + [f"RCPT {arg}"]
        await super().smtp_RCPT(arg)


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
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "login": session.auth_data.decode() if session.auth_data else None,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(record, f)
        with open(base + ".smtp.tmp", "w", encoding="utf-8", errors="surrogateescape") as f:
            f.writelines(line + "\n" for line in getattr(envelope, "commands", []))
        os.rename(base + ".smtp.tmp", base + ".smtp")
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 OK queued"


def authenticator_for(credentials):
    user, password = credentials.split(":", 1)

    def authenticate(server, session, envelope, mechanism, data):
        ok = data.login.decode() == user and data.password.decode() == password
        return AuthResult(success=ok, auth_data=data.login if ok else None)

    return authenticate


async def main():
    # aiosmtpd warns about its own deprecations and about AUTH over implicit
    # TLS (which it cannot see); neither is news to these tests.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--reply")
    parser.add_argument("--tls", default="plain", choices=["plain", "starttls", "smtps"])
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    parser.add_argument("--smtputf8", action="store_true")
    args = parser.parse_args()

    context = None
    if args.tls != "plain":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    sink = Sink(args.dir, args.reply)
    options = dict(decode_data=False, enable_SMTPUTF8=args.smtputf8, hostname="sink.test")
    if args.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)
    if args.auth:
        options.update(
            authenticator=authenticator_for(args.auth),
            auth_required=True,
            # Implicit TLS is TLS too; aiosmtpd only knows about STARTTLS.
            auth_require_tls=args.tls == "starttls",
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: RecordingSMTP(sink, **options),
        "127.0.0.1",
        0,
        ssl=context if args.tls == "smtps" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
