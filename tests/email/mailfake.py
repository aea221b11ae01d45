"""The email tests' own servers beside a real Dovecot:

- an SMTP submission server (aiosmtpd, PyPI) that checks PLAIN/LOGIN
  passwords and XOAUTH2 tokens and delivers every message into Dovecot over
  LMTP;
- an OAuth2 provider on HTTP: /authorize (answers with the redirect, as a
  provider does once the user agreed), /token (authorization_code with PKCE,
  refresh_token), /introspect (what Dovecot's oauth2 passdb asks), and
  /control and /stats for the test.

Usage: mailfake.py SMTP_PORT HTTP_PORT LMTP_PORT USER PASSWORD [CERT KEY]
With CERT and KEY (PEM files), the submission server offers STARTTLS.
Prints "ready" once both listen. Every port is on 127.0.0.1.
"""

import base64
import hashlib
import json
import smtplib
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_PORT, HTTP_PORT, LMTP_PORT = (int(a) for a in sys.argv[1:4])
USER, PASSWORD = sys.argv[4], sys.argv[5]
CERT_KEY = sys.argv[6:8]
CLIENT_ID, CLIENT_SECRET = "test-client", "test-client-secret"

lock = threading.Lock()
state = {
    "access": set(),      # access tokens that work
    "refresh": {"rt-initial"},  # refresh tokens that work
    "codes": {},          # code -> (challenge, redirect_uri)
    "expires_in": 3600,
    "n": 0,
    "refresh_grants": 0,
    "code_grants": 0,
    "introspections": 0,
    "smtp_xoauth2": 0,
    "mail": [],           # what SMTP accepted: from, to, data, tls
}


def new(prefix):
    state["n"] += 1
    return f"{prefix}-{state['n']}"


def token_ok(tok):
    with lock:
        return tok in state["access"]


def lmtp(rcpts, data):
    with smtplib.LMTP("127.0.0.1", LMTP_PORT) as l:
        l.sendmail(USER, rcpts, data)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            state["mail"].append({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
            })
        # The local user's mail goes into Dovecot; the rest would be
        # relayed, and is only recorded.
        local = [r for r in envelope.rcpt_tos if r.lower() == USER]
        if local:
            try:
                lmtp(local, envelope.content)
            except Exception as e:  # delivery is the test's business
                return f"451 LMTP delivery failed: {e}"
        return "250 OK queued"

    async def auth_XOAUTH2(self, server, args):
        with lock:
            state["smtp_xoauth2"] += 1
        try:
            if len(args) > 1:
                raw = base64.b64decode(args[1]).decode()
            else:
                raw = (await server.challenge_auth("")).decode()
        except Exception:
            return AuthResult(success=False, handled=False)
        fields = dict(p.split("=", 1) for p in raw.split("\x01") if "=" in p)
        tok = fields.get("auth", "").removeprefix("Bearer ")
        if fields.get("user") == USER and token_ok(tok):
            return AuthResult(success=True, auth_data=USER)
        await server.push('535 5.7.8 {"status":"401","schemes":"Bearer","scope":"mail"}')
        return AuthResult(success=False, handled=True)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False)


def b64url_sha256(s):
    d = hashlib.sha256(s.encode()).digest()
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


class Http(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def form(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw or "{}")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        if u.path == "/stats":
            with lock:
                body = {k: state[k] for k in ("refresh_grants", "code_grants", "introspections", "smtp_xoauth2")}
                body["mail"] = state["mail"]
            return self.reply(200, body)
        if u.path == "/authorize":
            # The user agreed: back to the app with a code.
            if q.get("client_id") != CLIENT_ID or q.get("code_challenge_method") != "S256" \
                    or not q.get("code_challenge") or not q.get("state"):
                return self.reply(400, {"error": "invalid_request", "got": q})
            with lock:
                code = new("code")
                state["codes"][code] = (q["code_challenge"], q["redirect_uri"], q.get("scope", ""))
            loc = q["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": q["state"]})
            return self.reply(302, {}, [("Location", loc)])
        self.reply(404, {})

    def do_POST(self):
        f = self.form()
        if self.path == "/introspect":
            with lock:
                state["introspections"] += 1
                ok = f.get("token") in state["access"]
            return self.reply(200, {"active": "true", "username": USER} if ok else {"active": "false"})
        if self.path == "/token":
            if f.get("client_id") != CLIENT_ID or f.get("client_secret") != CLIENT_SECRET:
                return self.reply(401, {"error": "invalid_client"})
            with lock:
                if f.get("grant_type") == "refresh_token":
                    if f.get("refresh_token") not in state["refresh"]:
                        return self.reply(400, {"error": "invalid_grant",
                                                "error_description": "Token has been expired or revoked."})
                    state["refresh_grants"] += 1
                    at = new("at")
                    state["access"].add(at)
                    return self.reply(200, {"access_token": at, "token_type": "Bearer",
                                            "expires_in": state["expires_in"]})
                if f.get("grant_type") == "authorization_code":
                    c = state["codes"].pop(f.get("code", ""), None)
                    if c is None:
                        return self.reply(400, {"error": "invalid_grant", "error_description": "unknown code"})
                    challenge, redirect, _ = c
                    if b64url_sha256(f.get("code_verifier", "")) != challenge:
                        return self.reply(400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"})
                    if f.get("redirect_uri") != redirect:
                        return self.reply(400, {"error": "invalid_grant", "error_description": "redirect_uri differs"})
                    state["code_grants"] += 1
                    rt = new("rt")
                    state["refresh"].add(rt)
                    at = new("at")
                    state["access"].add(at)
                    return self.reply(200, {"access_token": at, "refresh_token": rt,
                                            "token_type": "Bearer", "expires_in": state["expires_in"]})
            return self.reply(400, {"error": "unsupported_grant_type"})
        if self.path == "/control":
            with lock:
                if f.get("expire_access"):
                    state["access"].clear()
                if f.get("revoke_refresh"):
                    state["refresh"].clear()
                if "expires_in" in f:
                    state["expires_in"] = int(f["expires_in"])
            return self.reply(200, {"ok": True})
        if self.path == "/deliver":
            try:
                data = base64.b64decode(f["data_b64"]) if "data_b64" in f else f["data"].encode()
                lmtp(f["to"], data)
            except Exception as e:
                return self.reply(500, {"error": str(e)})
            return self.reply(200, {"ok": True})
        self.reply(404, {})


def main():
    tls = None
    if CERT_KEY:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(*CERT_KEY)
    smtp = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=SMTP_PORT,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
        tls_context=tls,
    )
    smtp.start()
    http = ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), Http)
    print("ready", flush=True)
    try:
        http.serve_forever()
    finally:
        smtp.stop()


main()
