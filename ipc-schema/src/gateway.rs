//! What every chat gateway answers besides its own methods.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::Call;

/// A gateway's connection to its chat service.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LinkHealth {
    /// False once several attempts in a row have failed.
    pub healthy: bool,
    /// "polling, last success 3 s ago", or what keeps failing.
    pub summary: String,
}

/// A message a service hands a gateway for one of its chats (a scheduled
/// job's answer): `<gateway>.deliver`. The gateway sends it only to a chat
/// that is allowed to talk to it, and only for the services it trusts to.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The chat as the gateway names it (a Telegram chat id: `-100123`).
    pub chat: String,
    /// Markdown, rendered as the gateway renders answers.
    pub text: String,
}

/// Every gateway's `deliver`, by the prefix of its chats (`telegram:42`).
pub const DELIVER: &[(&str, Call<Delivery, ()>)] = &[("telegram", crate::telegram::DELIVER)];

/// A delivery target `<gateway>:<chat>` read: the gateway's method and the
/// chat; the error says what is wrong and which gateways there are.
pub fn target(text: &str) -> Result<(Call<Delivery, ()>, &str), String> {
    let known = || {
        DELIVER
            .iter()
            .map(|(p, _)| format!("{p}:<chat id>"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((prefix, chat)) = text.split_once(':') else {
        return Err(format!(
            "delivery target `{text}`: expected <gateway>:<chat> ({})",
            known()
        ));
    };
    let chat = chat.trim();
    match DELIVER.iter().find(|(p, _)| *p == prefix.trim()) {
        Some(_) if chat.is_empty() => Err(format!("delivery target `{text}`: the chat is empty")),
        Some((_, call)) => Ok((*call, chat)),
        None => Err(format!(
            "delivery target `{text}`: no gateway `{prefix}` (targets: {})",
            known()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_target_names_a_gateway_and_a_chat() {
        let (call, chat) = target("telegram:-100123").unwrap();
        assert_eq!(
            (call.service, call.method, chat),
            ("telegram", crate::telegram::methods::DELIVER, "-100123")
        );
        let e = target("telegram").unwrap_err();
        assert!(
            e.contains("expected <gateway>:<chat> (telegram:<chat id>)"),
            "{e}"
        );
        let e = target("slack:C1").unwrap_err();
        assert!(e.contains("no gateway `slack`"), "{e}");
        assert!(
            target("telegram: ")
                .unwrap_err()
                .contains("the chat is empty")
        );
    }
}
