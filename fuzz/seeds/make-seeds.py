#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/seeds/<target>/ (run from anywhere).

Each seed is a small, meaningful input in the target's own format: its
header bytes (flags, split seeds, limits) and then a real-looking
transcript, Maildir name, migration list or cache file. The files are
committed; this script is how they were made and how to change them.
"""

import base64
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent


def b64(text: bytes) -> bytes:
    return base64.b64encode(text)


def crlf(*lines: str) -> bytes:
    return b"".join(line.encode() + b"\r\n" for line in lines)


# submission_session: flags, split seed, then the client's bytes.
# flags: 1 TLS already, 2 STARTTLS available, 4 plaintext login, 8 any
# sender, 0x30 size (16, 64, 1000, 35M), 0x40 one recipient, 0x80 log.
TLS, STARTTLS, PLAIN, ANY, SIZE_1000, ONE_RCPT, LOG = 1, 2, 4, 8, 0x20, 0x40, 0x80
PLAIN_OK = b64(b"\0fuzz@example.com\0secret7")  # odd length: accepted
PLAIN_BAD = b64(b"\0fuzz@example.com\0secret")  # even length: refused
MESSAGE = crlf(
    "From: Fuzz <fuzz@example.com>",
    "To: bob@example.net",
    "Subject: seed",
    "",
    "Hello Bob,",
    "..a line that starts with a dot",
    "bye",
    ".",
)
SUBMISSION = {
    "tls-plain-login-send": (TLS | SIZE_1000, 0, crlf(
        "EHLO client.example.net",
        "AUTH PLAIN " + PLAIN_OK.decode(),
        "MAIL FROM:<fuzz@example.com> BODY=8BITMIME SIZE=300",
        "RCPT TO:<bob@example.net>",
        "DATA") + MESSAGE + crlf("QUIT")),
    "starttls-pipelined-junk-then-login": (STARTTLS | SIZE_1000, 3,
        crlf("EHLO client", "STARTTLS", "MAIL FROM:<evil@example.com>")
        + crlf("EHLO client", "AUTH LOGIN", b64(b"fuzz@example.com").decode(),
               b64(b"secret7").decode(), "MAIL FROM:<Alias@example.org>",
               "RCPT TO:<a@example.net>", "RCPT TO:<b@example.net>", "DATA")
        + MESSAGE + crlf("QUIT")),
    "refused-login-then-mail": (TLS | SIZE_1000, 7, crlf(
        "EHLO c", "AUTH PLAIN", PLAIN_BAD.decode(),
        "MAIL FROM:<fuzz@example.com>", "AUTH PLAIN *", "AUTH LOGIN",
        "*", "QUIT")),
    "bdat-chunk-not-commands": (TLS | ANY | SIZE_1000, 1,
        crlf("EHLO c", "AUTH PLAIN " + PLAIN_OK.decode(),
             "MAIL FROM:<x@example.com>", "RCPT TO:<y@example.net>",
             "BDAT 24 LAST")
        + b"RSET\r\nQUIT\r\nDATA\r\n.\r\n" + crlf("NOOP", "RSET", "QUIT")),
    "errors-until-closed": (0, 2, crlf(
        "HELO", "FOO", "MAIL FROM:<a@b.c>", "RCPT TO:<x>", "DATA", "AUTH PLAIN",
        "STARTTLS", "EXPN list", "HELP", "ETRN x", "BDAT x", "NOOP")),
    "sender-policy-and-from-header": (TLS | SIZE_1000, 5,
        crlf("EHLO c", "AUTH PLAIN " + PLAIN_OK.decode(),
             "MAIL FROM:<other@example.com>", "MAIL FROM:<fuzz@example.com>",
             "RCPT TO:<bob@example.net>", "DATA")
        + crlf("From: someone@else.example", "", "hi", ".")
        + crlf("MAIL FROM:<>", "RSET", "QUIT")),
    "bare-lf-and-oversize": (TLS | ANY, 9,
        crlf("EHLO c", "AUTH PLAIN " + PLAIN_OK.decode(),
             "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.net>", "DATA")
        + b"bare\nline feed\r\n.\r\n"
        + crlf("MAIL FROM:<a@example.com>", "RCPT TO:<b@example.net>", "DATA")
        + b"x" * 80 + b"\r\n.\r\n" + crlf("QUIT")),
    "plaintext-login-then-starttls": (STARTTLS | PLAIN | SIZE_1000 | LOG, 4,
        crlf("EHLO c", "AUTH PLAIN " + PLAIN_OK.decode(), "STARTTLS")
        + crlf("MAIL FROM:<fuzz@example.com>", "EHLO c",
               "MAIL FROM:<fuzz@example.com>", "RCPT TO:<x@example.net>",
               "DATA", ".", "QUIT")),
    "smuggling-line-ends": (TLS | ANY | SIZE_1000, 8,
        crlf("EHLO c", "AUTH PLAIN " + PLAIN_OK.decode(),
             "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.net>", "DATA")
        + b"Subject: none of these ends the message\r\n\r\n"
        + b"a\n.\r\nMAIL FROM:<x@example.com>\r\n"
        + b"b\r\n.\nRCPT TO:<y@example.net>\r\n"
        + b"c\r\n.\r\r\nDATA\r\n"
        + b"d\r\n. \r\n..\r\n.\r\n" + crlf("QUIT")),
    "recipient-limit-and-helo": (TLS | ONE_RCPT | ANY | SIZE_1000, 6, crlf(
        "HELO c", "VRFY bob", "AUTH PLAIN " + PLAIN_OK.decode(),
        "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.net>",
        "RCPT TO:<c@example.net>", "RCPT TO:<d@example.net> NOTIFY=NEVER", "DATA",
        "Subject: x", "", ".x", ".", "QUIT")),
}

# pop3_session: flags, shape, then lines. flags: 1 STLS available, 2 TLS,
# 4 plaintext login, 0x18 max_command_size (512, 64, 16, 1020). shape: the
# mailbox holds shape % 6 messages; listings come in shape >> 3 octets.
POP3 = {
    "user-pass-drain": (2, 0x23, crlf(
        "CAPA", "USER ann", "PASS secret7", "STAT", "LIST", "UIDL", "RETR 1",
        "TOP 2 0", "DELE 1", "DELE 2", "LIST 1", "STAT", "QUIT")),
    "before-login": (1, 0x13, crlf(
        "STAT", "LIST", "UIDL 1", "RETR 1", "TOP 1 1", "DELE 1", "RSET", "NOOP",
        "PASS x", "USER ann", "STLS", "PASS secret7", "CAPA", "USER ann",
        "PASS secret7", "STAT", "QUIT")),
    "sasl-plain-and-login": (2, 0x0a, crlf(
        "AUTH", "AUTH PLAIN", b64(b"\0ann\0secret").decode(), "AUTH LOGIN",
        b64(b"ann").decode(), b64(b"secret7").decode(), "UIDL", "DELE 2",
        "RSET", "UTF8", "NOOP", "QUIT")),
    "refused-then-plaintext-denied": (1, 0x05, crlf(
        "USER ann", "PASS secret", "AUTH PLAIN =", "USER bad/name", "QUIT")),
}

NAMES = [
    b"1035478339.27041_118.foo.org,S=1000,W=1030:2,RS",
    b"1700000000.M123456P7890Q3.mail.example.com,S=2048,W=2101:2,S",
    b"1700000001.M1P2.host",
    b"1700000002.M2P3.host,W=512",
    b"1700000003.Vfd01I1a2bM123456.host:2,FST",
    b"1700000004.P1234Q5.host\\057sub\\072x,S=77:2,",
    b"1700000005.M637097P1234.host,S=4000,W=4096:2,Sab",
    b"1.2.host,S=5,W=x,W=9:2,DT",
    b"99999999999999999999999.overflow,W=18446744073709551616:2,",
    b"1700000006.M9P9.host,W=0007:1,experimental",
]

DOVECOT = {
    "documented": b"3 V1700000000 N5 G3085f01b7f11094c501100008c4a11c1\n"
        b"1 W1030 :1035478339.27041_118.foo.org,S=1000:2,S\n"
        b"2 GAbC P1700000002.M2P9.host :1700000002.M2P9.host:2,\n"
        b"3 P :3.c.host\n"
        b"4294967295 :4.d.host\n",
    "migrated-from-courier": b"3 V1612345678 N4 G1a2b3c4d5e6f70811a2b3c4d5e6f7081\n"
        b"1 PUID1-1612345678 W2048 :1612345679.M1P100.mail.example.com,S=2000:2,S\n"
        b"2 PUID2-1612345678 :1612345680.M2P100.mail.example.com,S=512:2,\n"
        b"3 W99 :1612345681.M3P100.mail.example.com with space,S=90\n",
    "broken-lines-and-repeats": b"3 V7 N9\nx :a\n1 W5\n2 :\n\n3 :b\n4 Pnew :b:2,S\n"
        b"5 P" + b"x" * 80 + b" :long.uidl\n6 Wnot :w.host\n",
    "version-1-ignored": b"1 1612345678 12\n1 1612345678.M1.host\n",
}

COURIER = {
    "version-3": b"/3 4 1700000000\n"
        b"1700000001.M1P2.host:2,S 1042 1:1700000000:0\n"
        b"1700000002.M2P2.host:2, 588 2:1700000000:1\n"
        b"17 with space.host:2, 10 3:1700000000:0\n",
    "version-2-and-oldest-lines": b"/2 3 5\n"
        b"9.a+b'c\"d e.host 10 0:5\n"
        b"1612345679.M1P100.mail,S=2000:2,S 2044 1:0\n"
        b"bad line\nnosize 1:1\nx 1 2:1\n",
}

CACHE = {
    "in-order": (0, b"popgate-sizes 1\n1700000000.M1P2.host 5120 5187\n"
        b"1700000100.M7P8.host 803 822\n1700000200.M9P9.host,S=10 10 12\n"),
    "reversed-with-gaps": (0x07, b"popgate-sizes 1\na.host 1 2\nb.host 3 4\n"
        b"c.host 5 6\nd.host 7 8\n"),
    "sized-elsewhere": (0x08, b"popgate-sizes 1\na 1 2\nb 3 4\nc 5 6\nd 7 8\n"),
    "cut-short": (0, b"popgate-sizes 1\na.host 10 12\nb.host 3"),
    "repeated-name": (0, b"popgate-sizes 1\na 1 2\nb 3 4\na 1 2\n"),
    "other-version": (0, b"popgate-sizes 2\na 1 2\n"),
}

# The targets that had no seeds before: a few inputs each, in their formats.
OTHERS = {
    "pop3_command": {
        "user": b"\x80USER ann", "pass": b"\x80PASS secret with spaces",
        "top": b"\x80TOP 1 99999999999999999999", "auth": b"\x80AUTH PLAIN AGFubgBzZWNyZXQ=",
        "too-long": b"\x02LIST 1",
    },
    "sasl": {
        "plain": PLAIN_OK, "login": b64(b"ann"), "cancel": b"*", "empty": b"=",
    },
    "htpasswd": {
        "mixed": b"# users\nann:$2y$05$abcdefghijklmnopqrstuu5Jp1K1hVX0j1k1qkJ6Gk8qYV3vR9ZWy\n"
            b"bob:$6$salt$hash\ncarol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
            b"dave:$apr1$salt$hash\nann:$1$dup\nbad/name:x\n\nnohash:\n",
    },
    "line_buffer": {
        "lines": b"\x10\x03USER ann\r\nPASS x\nCAPA\r\n",
        "over-limit": b"\x04\x01toolong\r\nok\r\n",
    },
    "proxy_header": {
        "v1": b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 110\r\nCAPA\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v2": b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x02\xdc\x04\x00\x6e",
    },
    "wire_encoder": {
        "lf-message": b"\x80\x02From: a@b\nSubject: x\n\n.dot line\nbody\n",
        "crlf-no-final-newline": b"\x40\xffFrom: a@b\r\n\r\n..\r\nlast",
    },
}


def write(target: str, name: str, data: bytes) -> None:
    directory = ROOT / target
    directory.mkdir(exist_ok=True)
    (directory / name).write_bytes(data)


def main() -> None:
    for directory in ROOT.iterdir():
        if directory.is_dir():
            shutil.rmtree(directory)
    for name, (flags, seed, data) in SUBMISSION.items():
        write("submission_session", name, bytes([flags, seed]) + data)
    for name, (flags, shape, data) in POP3.items():
        lines = data.replace(b"\r\n", b"\n")
        write("pop3_session", name, bytes([flags, shape]) + lines)
    for index, name in enumerate(NAMES):
        write("maildir_name", f"name-{index}", name)
    for name, data in DOVECOT.items():
        write("dovecot_uidlist", name, data)
    for name, data in COURIER.items():
        write("courier_sizelist", name, data)
    for name, (shape, data) in CACHE.items():
        write("size_cache", name, bytes([shape]) + data)
    for target, seeds in OTHERS.items():
        for name, data in seeds.items():
            write(target, name, data)


if __name__ == "__main__":
    main()
