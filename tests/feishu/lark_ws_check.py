#!/usr/bin/env python3
"""Runs the official Feishu client's long connection (PyPI lark-oapi,
lark.ws.Client) against a server, to keep the fake's long connection
honest: it must fetch the endpoint, connect, receive an
im.message.receive_v1 event, hand it to its handler and acknowledge it.

    lark_ws_check.py <domain> <app_id> <app_secret>

Prints one JSON line with the message the handler got, then exits 0 once
the acknowledgement had time to go out; exits 3 after 30 s without one.
"""
import json
import os
import sys
import threading

import lark_oapi as lark


def main():
    domain, app_id, app_secret = sys.argv[1:4]

    def on_message(data):
        m = data.event.message
        print(json.dumps({"message_id": m.message_id, "chat_id": m.chat_id,
                          "text": json.loads(m.content)["text"],
                          "sender": data.event.sender.sender_id.open_id}), flush=True)
        # The SDK acknowledges after the handler returns.
        threading.Timer(1.0, lambda: os._exit(0)).start()

    handler = lark.EventDispatcherHandler.builder("", "").register_p2_im_message_receive_v1(on_message).build()
    threading.Timer(30.0, lambda: os._exit(3)).start()
    lark.ws.Client(app_id, app_secret, event_handler=handler, domain=domain,
                   log_level=lark.LogLevel.ERROR).start()


if __name__ == "__main__":
    main()
