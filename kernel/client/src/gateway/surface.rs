//! A chat service as a gateway sees it: what it can send, edit and show.
//! Telegram implements it; Discord and Feishu will. Everything a gateway
//! does with an intent or a command ([`super::conversation`]) is written
//! once against this trait.

use std::future::Future;

use oi_ipc_schema::agent::CommandReply;

pub trait Surface: Sync {
    /// A chat (a Telegram chat id, a Discord channel).
    type Chat: Copy + Send + Sync + std::fmt::Display + 'static;
    /// A message the surface sent or received, to reply to or edit.
    type Message: Copy + Send + Sync + 'static;

    /// The agent's conversation for `chat` (`telegram:<id>`).
    fn chat_key(&self, chat: Self::Chat) -> String;

    /// Whether `text` fits in one message (each surface counts its own way:
    /// UTF-16 units on Telegram).
    fn fits(&self, text: &str) -> bool;

    /// Sends plain text, split into as many messages as it needs, the
    /// first replying to `reply_to`. Failures are the surface's to log.
    fn send(
        &self,
        chat: Self::Chat,
        text: &str,
        reply_to: Option<Self::Message>,
    ) -> impl Future<Output = ()> + Send;

    /// Sends one short status message without a notification; its id, to
    /// edit it.
    fn send_status(
        &self,
        chat: Self::Chat,
        text: &str,
    ) -> impl Future<Output = Option<Self::Message>> + Send;

    /// Replaces the text of a message the surface sent.
    fn edit(
        &self,
        chat: Self::Chat,
        message: Self::Message,
        text: &str,
    ) -> impl Future<Output = ()> + Send;

    /// Shows that an answer is being worked on ("typing…").
    fn typing(&self, chat: Self::Chat) -> impl Future<Output = ()> + Send;

    /// How often the typing indicator is renewed (before it lapses).
    fn typing_every(&self) -> std::time::Duration;

    /// The agent's answer, Markdown, formatted as the surface can.
    fn answer(
        &self,
        chat: Self::Chat,
        reply_to: Self::Message,
        markdown: &str,
    ) -> impl Future<Output = ()> + Send;

    /// Called once, just before the reply that ends the handling of the
    /// chat's current message (the answer, an error, "Cancelled.", a
    /// command's reply). A surface whose inbox outlives a restart records
    /// it there, so a crash between this reply and the message being marked
    /// done does not make the restarted gateway report the message as
    /// unfinished: that would be a second reply.
    fn replying(&self, chat: Self::Chat) -> impl Future<Output = ()> + Send;

    /// A chat command's reply, its choices as buttons where the surface
    /// has them.
    fn command_reply(
        &self,
        chat: Self::Chat,
        reply_to: Self::Message,
        reply: &CommandReply,
    ) -> impl Future<Output = ()> + Send;
}
