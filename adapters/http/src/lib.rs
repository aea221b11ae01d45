//! The HTTP adapter (`openintentd service http`): `http_request`.
//!
//! Any method, headers and body, to a URL the SSRF guard accepts (after
//! DNS, on every redirect). Credentials are never arguments: the call
//! names a vault secret (`"auth": {"secret": "github-token"}`) and the
//! adapter reads it from the vault (as the `http` service, so
//! `[vault.policy] http` decides which secrets) and injects it, only into
//! a request to a host the secret is bound to (`oictl vault set NAME
//! --hosts api.github.com`), and never across a redirect to another
//! origin. A response that echoes it in any readable form is withheld
//! ([`withhold`]).

pub mod withhold;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oi_adapter_web::WebConfig;
use oi_ipc_schema::ToolSpec;
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::secrets::{self, SecretError};
use oi_kernel::tool::{self, json_reply, spec};
use oi_sandbox::body::{charset, content_type, decode, read_capped};
use oi_sandbox::netguard::{Guarded, fetch_error};
use serde::Deserialize;
use serde_json::{Value, json};

use url::Url;
use zeroize::Zeroizing;

pub const TOOL: &str = "http_request";

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![spec(
        TOOL,
        "Make an HTTP request (any method, headers, body) and return the status, headers and body (JSON parsed when it is JSON). For APIs that need a credential, name the vault secret in auth; never put credentials in headers.",
        json!({"type": "object", "required": ["url"], "properties": {
            "method": {"type": "string", "description": "GET (default), POST, PUT, PATCH, DELETE, HEAD, OPTIONS"},
            "url": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"description": "A string is sent as is; anything else as JSON."},
            "auth": {"type": "object", "required": ["secret"], "properties": {
                "secret": {"type": "string", "description": "Name of the vault secret, e.g. github-token"},
                "scheme": {"type": "string", "enum": ["bearer", "token", "basic", "header"], "description": "Default bearer"},
                "header": {"type": "string", "description": "Header name for scheme=header, e.g. X-Api-Key"}}}}}),
    )]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    secret: String,
    #[serde(default = "bearer")]
    scheme: String,
    header: Option<String>,
}

fn bearer() -> String {
    "bearer".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
    auth: Option<Auth>,
}

fn get() -> String {
    "GET".into()
}

/// Headers that carry credentials: only `auth` may set them.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

struct State {
    cfg: WebConfig,
    guarded: Guarded,
}

fn build(cfg: WebConfig) -> Result<State, ServiceError> {
    Ok(State {
        guarded: Guarded::new(cfg.guard(), &cfg.client_settings())?,
        cfg,
    })
}

pub struct HttpAdapter {
    bus: BusClient,
    state: Live<State>,
}

impl HttpAdapter {
    pub fn new(bus: BusClient, cfg: WebConfig) -> Result<HttpAdapter, ServiceError> {
        Ok(HttpAdapter {
            bus,
            state: Live::new(build(cfg)?),
        })
    }

    fn state(&self) -> Arc<State> {
        self.state.get()
    }

    /// The secret's value and its hosts, read from the vault as this
    /// service.
    async fn secret(&self, name: &str) -> Result<(Zeroizing<String>, Vec<String>), ServiceError> {
        secrets::read_bound(&self.bus, name, Duration::from_secs(5))
            .await
            .map_err(|e| match e {
                SecretError::Bus(e) => ServiceError::new(
                    e.code(),
                    format!("{TOOL}: cannot read vault secret '{name}': {e}"),
                ),
                SecretError::Unreadable(_) => ServiceError::internal(format!("{TOOL}: {e}")),
                SecretError::NotText(_) => ServiceError::bad_request(format!("{TOOL}: {e}")),
            })
    }

    pub async fn request(&self, payload: &[u8]) -> Result<Value, ServiceError> {
        let a: Args = tool::parse_args(TOOL, payload)?;
        let method = reqwest::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                ServiceError::bad_request(format!("{TOOL}: '{}' is not an HTTP method", a.method))
            })?;
        let url = Url::parse(a.url.trim()).map_err(|e| {
            ServiceError::bad_request(format!("{TOOL}: '{}' is not a URL: {e}", a.url))
        })?;
        let s = self.state();
        s.guarded
            .guard
            .check_url(&url)
            .map_err(|e| tool::denied(format!("{TOOL}: {e}")))?;
        // A request that carries a credential follows no redirect to
        // another origin.
        let client = if a.auth.is_some() {
            &s.guarded.credentialed
        } else {
            &s.guarded.client
        };
        let mut req = client.request(method.clone(), url.clone());
        for (k, v) in &a.headers {
            if CREDENTIAL_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                return Err(ServiceError::bad_request(format!(
                    "{TOOL}: header '{k}' carries a credential; name a vault secret in \"auth\" instead"
                )));
            }
            req = req.header(k.as_str(), v.as_str());
        }
        req = match a.body {
            None | Some(Value::Null) => req,
            Some(Value::String(text)) => req.body(text),
            Some(v) => {
                let req = if a
                    .headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case("content-type"))
                {
                    req
                } else {
                    req.header(reqwest::header::CONTENT_TYPE, "application/json")
                };
                req.body(v.to_string())
            }
        };
        let mut secret: Option<(Zeroizing<String>, &str)> = None;
        if let Some(auth) = &a.auth {
            let (value, hosts) = self.secret(&auth.secret).await?;
            let host = url.host_str().unwrap_or("");
            if !oi_ipc_schema::vault::host_allowed(&hosts, host) {
                let bound = if hosts.is_empty() {
                    "is bound to no host".to_string()
                } else {
                    format!("may be sent only to {}", hosts.join(", "))
                };
                return Err(tool::denied(format!(
                    "{TOOL}: vault secret '{}' {bound}, not to '{host}'; the user can bind it with oictl vault set {} --hosts {host}",
                    auth.secret, auth.secret
                )));
            }
            req = match auth.scheme.as_str() {
                "bearer" => req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", value.as_str()),
                ),
                "token" => req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("token {}", value.as_str()),
                ),
                "basic" => {
                    let (user, pass) = value.split_once(':').unwrap_or((value.as_str(), ""));
                    req.basic_auth(user, Some(pass))
                }
                "header" => {
                    let Some(h) = auth.header.as_deref() else {
                        return Err(ServiceError::bad_request(format!(
                            "{TOOL}: auth scheme 'header' needs 'header' (the header's name)"
                        )));
                    };
                    req.header(h, value.as_str())
                }
                other => {
                    return Err(ServiceError::bad_request(format!(
                        "{TOOL}: auth scheme '{other}' is not one of bearer, token, basic, header"
                    )));
                }
            };
            secret = Some((value, auth.scheme.as_str()));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| fetch_error(TOOL, url.as_str(), &e))?;
        let status = resp.status().as_u16();
        let final_url = resp.url().to_string();
        let forms = secret
            .as_ref()
            .map(|(v, scheme)| withhold::Forms::of(v.as_str(), scheme));
        let echoes = |t: &str| forms.as_ref().and_then(|f| f.found_in(t));
        let headers: serde_json::Map<String, Value> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let v = v.to_str().ok()?;
                let shown = match echoes(v) {
                    Some(_) => "[withheld: it echoes the credential]",
                    None => v,
                };
                Some((k.as_str().to_string(), json!(shown)))
            })
            .collect();
        // With a credential, a redirect to another origin comes back here
        // instead of being followed.
        let redirect_not_followed = a.auth.is_some()
            && resp.status().is_redirection()
            && resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| resp.url().join(l).ok())
                .is_some_and(|to| to.origin() != resp.url().origin());
        let ct = content_type(&resp);
        let body = read_capped(resp, s.cfg.max_response_bytes as usize)
            .await
            .map_err(|e| fetch_error(TOOL, url.as_str(), &e))?;
        let text = decode(&body.bytes, charset(Some(&ct), &body.bytes));
        let withheld = echoes(&text);
        let is_json = ct.contains("json");
        let body_value = if withheld.is_some() {
            Value::Null
        } else if is_json && !body.truncated {
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))
        } else {
            Value::String(text)
        };
        let mut out = json!({
            "status": status,
            "url": final_url,
            "headers": headers,
            "body": body_value,
            "truncated": body.truncated,
        });
        if let (Some(how), Some(auth)) = (withheld, &a.auth) {
            out["withheld"] = json!(format!(
                "the response echoed the injected credential '{}' ({how}); its body is withheld",
                auth.secret
            ));
        }
        if redirect_not_followed {
            out["note"] = json!(
                "not followed: the request carried a credential, and a redirect to another origin would hand it over; request the new location without auth if that is meant"
            );
        }
        if body.truncated {
            out["note"] = json!(format!(
                "the body was larger than {} bytes ([web] max_response_bytes); the rest was not downloaded",
                s.cfg.max_response_bytes
            ));
        }
        Ok(out)
    }
}

impl Service for HttpAdapter {
    fn tools(&self) -> Vec<ToolSpec> {
        tool_specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        match req.method() {
            TOOL => json_reply(self.request(req.payload()).await?),
            other => Err(ServiceError::bad_request(format!(
                "the http adapter has no tool '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(web) = harness::config_update(generation, config_toml, Config::section) else {
            return;
        };
        if web == self.state().cfg {
            return;
        }
        self.state.rebuild("web", || build(web));
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "http",
    run,
    sections: &[],
    env: oi_kernel::kind::no_env,
};

/// `openintentd service http`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |bus| async move {
        HttpAdapter::new(bus, harness::service_config()?.section()?)
    })
}
