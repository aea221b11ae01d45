//! Sections of the config that a service or adapter crate owns. The crate
//! defines the serde type (with [`crate::vocabulary!`] enums for every
//! closed vocabulary) and its checks; the loader here only lays files over
//! each other and locates errors. `openintentd`'s service table lists each
//! crate's sections, so a bad value is refused at start and on reload with
//! its line and column, before any service sees it.

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserializer, Serialize};

use super::Config;

/// A top-level table of the config (`[shell]`, `[models]`), owned by the
/// crate that defines the type.
pub trait Section: Serialize + DeserializeOwned + Default {
    /// Its key at the top of the file.
    const NAME: &'static str;

    /// Checks beyond the types: ranges, URLs, names that must exist.
    /// `config` is the whole config, for sections that refer to others.
    fn validate(&self, config: &Config) -> Result<(), Invalid> {
        let _ = config;
        Ok(())
    }
}

/// A value a section's checks refuse: the key path it is at (located in
/// the file by the loader) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted path from the top of the file (`shell.timeout_secs`).
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// What went wrong with one section, before the loader locates it.
#[derive(Debug)]
pub(super) enum Fault {
    /// A syntax or type error, with its byte offset in the user's text.
    Typed(Option<usize>, String),
    /// A check refused a value at this key path.
    Refused(Invalid),
}

/// One section as the loader checks it: its name and its check, made by
/// [`SectionRule::of`].
#[derive(Clone, Copy)]
pub struct SectionRule {
    pub name: &'static str,
    check: fn(&Config, Option<&str>) -> Result<(), Fault>,
}

impl std::fmt::Debug for SectionRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SectionRule({})", self.name)
    }
}

impl SectionRule {
    /// The rule of section type `S`.
    pub const fn of<S: Section>() -> SectionRule {
        SectionRule {
            name: S::NAME,
            check: check::<S>,
        }
    }

    /// Checks the section: first the user's own text alone (so a type
    /// error has its line and column), then the merged value's checks.
    pub(super) fn check(&self, config: &Config, user: Option<&str>) -> Result<(), Fault> {
        (self.check)(config, user)
    }
}

fn check<S: Section>(config: &Config, user: Option<&str>) -> Result<(), Fault> {
    if let Some(text) = user {
        typed_in::<S>(text, S::NAME)
            .map_err(|e| Fault::Typed(e.span().map(|s| s.start), e.message().trim().into()))?;
    }
    let section: S = config
        .section_value::<S>()
        .map_err(|m| Fault::Typed(None, m))?;
    section.validate(config).map_err(Fault::Refused)
}

/// Deserializes only the top-level key `name` of `text` as `S`, so its
/// errors keep their place in the text.
fn typed_in<S: DeserializeOwned>(
    text: &str,
    name: &'static str,
) -> Result<Option<S>, toml::de::Error> {
    let de = toml::de::Deserializer::parse(text)?;
    Pick::<S> {
        name,
        kind: PhantomData,
    }
    .deserialize(de)
}

/// A seed that reads one key of a table and skips the rest.
struct Pick<S> {
    name: &'static str,
    kind: PhantomData<S>,
}

impl<'de, S: DeserializeOwned> DeserializeSeed<'de> for Pick<S> {
    type Value = Option<S>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<S>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: DeserializeOwned> Visitor<'de> for Pick<S> {
    type Value = Option<S>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a table with a [{}] section", self.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<S>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.name {
                found = Some(map.next_value::<S>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A closed vocabulary of the config: a serde enum, so an unknown value
/// is an error at its line and column that names the allowed ones (never
/// a silent default), with `as_str` for its spelling. The crate using it
/// needs `serde` with `derive`.
#[macro_export]
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident default $def:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant,)+
        }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                $name::$def
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The first of `fields` (key path, value) that is 0, as a refusal.
pub fn at_least_one(fields: &[(&str, u64)]) -> Result<(), Invalid> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(Invalid::new(*key, format!("{key} must be at least 1"))),
        None => Ok(()),
    }
}

/// Whether `url` is an http or https URL (the scheme only).
pub fn http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The entry `name` of an `[<section>.accounts]` table, or the first one
/// when `name` is `None`; the error names what there is.
pub fn pick_account<'a, A>(
    accounts: &'a std::collections::BTreeMap<String, A>,
    name: Option<&str>,
    section: &str,
) -> Result<(&'a str, &'a A), String> {
    match name {
        Some(n) => accounts
            .get_key_value(n)
            .map(|(k, a)| (k.as_str(), a))
            .ok_or_else(|| {
                format!(
                    "no {section} account '{n}' (accounts: {})",
                    accounts.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
        None => accounts
            .iter()
            .next()
            .map(|(k, a)| (k.as_str(), a))
            .ok_or_else(|| {
                format!("no {section} account is configured ([{section}.accounts.<name>])")
            }),
    }
}
