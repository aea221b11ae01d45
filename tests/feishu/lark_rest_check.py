#!/usr/bin/env python3
"""Runs the official Feishu client (PyPI lark-oapi) against a server, to
keep the fake Feishu honest: the tenant token, the chat listing, a text
message, a post and a reply must all work as the SDK expects.

    lark_rest_check.py <domain> <app_id> <app_secret> <group name>

Prints one JSON line of what it saw; exits 1 on any failure.
"""
import json
import sys

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    CreateMessageRequest,
    CreateMessageRequestBody,
    ListChatRequest,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)


def need(resp, what):
    if not resp.success():
        sys.exit(f"{what}: code {resp.code}: {resp.msg}")
    return resp.data


def main():
    domain, app_id, app_secret, group = sys.argv[1:5]
    client = lark.Client.builder().app_id(app_id).app_secret(app_secret).domain(domain).build()
    chats = need(client.im.v1.chat.list(ListChatRequest.builder().page_size(50).build()), "chat.list")
    names = {c.name: c.chat_id for c in chats.items}
    if group not in names:
        sys.exit(f"chat.list: no {group!r} in {sorted(names)}")
    chat = names[group]
    text = need(
        client.im.v1.message.create(
            CreateMessageRequest.builder()
            .receive_id_type("chat_id")
            .request_body(
                CreateMessageRequestBody.builder()
                .receive_id(chat)
                .msg_type("text")
                .content(json.dumps({"text": "from lark-oapi"}))
                .build()
            )
            .build()
        ),
        "message.create text",
    )
    post = need(
        client.im.v1.message.create(
            CreateMessageRequest.builder()
            .receive_id_type("chat_id")
            .request_body(
                CreateMessageRequestBody.builder()
                .receive_id(chat)
                .msg_type("post")
                .content(json.dumps({"zh_cn": {"title": "T", "content": [[{"tag": "text", "text": "a post"}]]}}))
                .build()
            )
            .build()
        ),
        "message.create post",
    )
    reply = need(
        client.im.v1.message.reply(
            ReplyMessageRequest.builder()
            .message_id(text.message_id)
            .request_body(
                ReplyMessageRequestBody.builder().msg_type("text").content(json.dumps({"text": "a reply"})).build()
            )
            .build()
        ),
        "message.reply",
    )
    print(json.dumps({
        "chat": chat,
        "text": text.message_id,
        "text_chat": text.chat_id,
        "text_content": json.loads(text.body.content),
        "post": post.message_id,
        "reply": reply.message_id,
        "reply_parent": reply.parent_id,
    }))


if __name__ == "__main__":
    main()
