//! Checks of a whole configuration, beyond its types: groups, dependencies
//! and requirements that exist, vocabularies, URLs and ranges. Each error
//! is the offending key path and what is wrong, located in the file by the
//! loader.

use super::*;

impl Config {
    /// Cross-field checks: groups exist, dependencies exist and form no
    /// cycle, durations are positive. Returns the offending key path.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        self.validate_ranges()?;
        if !(0.0..=1.0).contains(&self.supervisor.backoff_jitter) {
            return Err((
                "supervisor.backoff_jitter".into(),
                "supervisor.backoff_jitter must be between 0.0 and 1.0".into(),
            ));
        }
        self.validate_models()?;
        self.validate_adapters()?;
        self.validate_agent()?;
        self.validate_telegram()?;
        self.validate_memory()?;
        for (name, spec) in &self.services {
            if !valid_name(name) {
                return Err((
                    format!("services.{name}"),
                    format!("service name '{name}' may only contain a-z, 0-9, '-' and '_'"),
                ));
            }
            if !self.groups.contains_key(&spec.group) {
                let known: Vec<&str> = self.groups.keys().map(String::as_str).collect();
                return Err((
                    format!("services.{name}"),
                    format!(
                        "service '{name}' is in group '{}', which is not defined (groups: {})",
                        spec.group,
                        known.join(", ")
                    ),
                ));
            }
            for r in &spec.requires {
                if Requirement::parse(r).is_none() {
                    return Err((
                        format!("services.{name}"),
                        format!(
                            "services.{name}.requires: '{r}' is neither 'env:<VARIABLE>' nor 'secret:<vault secret>'"
                        ),
                    ));
                }
            }
            for dep in &spec.depends_on {
                match self.services.get(dep) {
                    None => {
                        return Err((
                            format!("services.{name}"),
                            format!(
                                "service '{name}' depends on '{dep}', which is not a configured service"
                            ),
                        ));
                    }
                    Some(d) if !d.enabled && spec.enabled => {
                        return Err((
                            format!("services.{name}"),
                            format!("service '{name}' depends on '{dep}', which is disabled"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(cycle) = self.dependency_cycle() {
            return Err((
                format!("services.{}", cycle[0]),
                format!(
                    "services depend on each other in a cycle: {}",
                    cycle.join(" -> ")
                ),
            ));
        }
        Ok(())
    }

    /// Every timing and size of the bus and the supervisor within a range
    /// that works: a 1 ms heartbeat makes the watchdog kill healthy
    /// services, a huge one turns it off, a zero timeout never lets a
    /// service start. The same checks run at start and on every reload.
    pub(super) fn validate_ranges(&self) -> Result<(), (String, String)> {
        const DAY_MS: u64 = 86_400_000;
        let b = &self.bus;
        let s = &self.supervisor;
        let mut fields: Vec<(String, u64, u64, u64)> = vec![
            (
                "bus.max_frame_bytes".into(),
                u64::from(b.max_frame_bytes),
                1024,
                1 << 30,
            ),
            (
                "bus.heartbeat_interval_ms".into(),
                b.heartbeat_interval_ms,
                50,
                60_000,
            ),
            (
                "bus.default_deadline_ms".into(),
                b.default_deadline_ms,
                1,
                DAY_MS,
            ),
            // Above the services' reserve, so clients get some too.
            (
                "bus.max_connections".into(),
                b.max_connections,
                crate::limits::SERVICE_RESERVE as u64 + 8,
                65_536,
            ),
            (
                "bus.max_connections_per_process".into(),
                b.max_connections_per_process,
                2,
                65_536,
            ),
            (
                "bus.max_requests_per_connection".into(),
                b.max_requests_per_connection,
                8,
                1_000_000,
            ),
            (
                "bus.max_queued_bytes".into(),
                b.max_queued_bytes,
                1 << 20,
                1 << 34,
            ),
            (
                "supervisor.intensity".into(),
                u64::from(s.intensity),
                0,
                1_000_000,
            ),
            ("supervisor.period_secs".into(), s.period_secs, 1, 86_400),
            (
                "supervisor.backoff_initial_ms".into(),
                s.backoff_initial_ms,
                1,
                3_600_000,
            ),
            (
                "supervisor.backoff_max_ms".into(),
                s.backoff_max_ms,
                s.backoff_initial_ms,
                DAY_MS,
            ),
            (
                "supervisor.min_unready_backoff_ms".into(),
                s.min_unready_backoff_ms,
                0,
                3_600_000,
            ),
            (
                "supervisor.backoff_reset_secs".into(),
                s.backoff_reset_secs,
                0,
                86_400,
            ),
            (
                "supervisor.start_timeout_secs".into(),
                s.start_timeout_secs,
                1,
                3600,
            ),
            (
                "supervisor.shutdown_timeout_secs".into(),
                s.shutdown_timeout_secs,
                1,
                3600,
            ),
            (
                "supervisor.missed_heartbeats".into(),
                u64::from(s.missed_heartbeats),
                1,
                1000,
            ),
            (
                "supervisor.log_lines".into(),
                s.log_lines as u64,
                1,
                1_000_000,
            ),
            (
                "supervisor.config_poll_ms".into(),
                s.config_poll_ms,
                50,
                3_600_000,
            ),
        ];
        for (name, g) in &self.groups {
            fields.push((
                format!("groups.{name}.intensity"),
                u64::from(g.intensity),
                0,
                1_000_000,
            ));
            fields.push((
                format!("groups.{name}.period_secs"),
                g.period_secs,
                1,
                86_400,
            ));
        }
        for (name, spec) in &self.services {
            if let Some(t) = spec.start_timeout_secs {
                fields.push((format!("services.{name}.start_timeout_secs"), t, 1, 3600));
            }
            if let Some(t) = spec.shutdown_timeout_secs {
                fields.push((format!("services.{name}.shutdown_timeout_secs"), t, 1, 3600));
            }
        }
        match fields.iter().find(|(_, v, lo, hi)| v < lo || v > hi) {
            Some((key, v, lo, hi)) => {
                // A group's or a service's key is located at its table.
                let at = match key.split('.').collect::<Vec<_>>().as_slice() {
                    [t @ ("groups" | "services"), name, _] => format!("{t}.{name}"),
                    _ => key.clone(),
                };
                Err((
                    at,
                    format!("{key} is {v}; it must be between {lo} and {hi}"),
                ))
            }
            None => Ok(()),
        }
    }

    pub(super) fn validate_models(&self) -> Result<(), (String, String)> {
        let entries = std::iter::once(("provider".to_string(), &self.provider))
            .filter(|(_, e)| !e.kind.is_empty())
            .chain(self.models.iter().map(|(a, e)| (format!("models.{a}"), e)));
        for (key, e) in entries {
            if !MODEL_KINDS.contains(&e.kind.as_str()) {
                return Err((
                    key.clone(),
                    format!(
                        "{key}: kind is '{}'; use {}",
                        e.kind,
                        MODEL_KINDS.join(", ")
                    ),
                ));
            }
            if e.model.is_empty() {
                return Err((key.clone(), format!("{key}: 'model' is required")));
            }
            if !http_url(&e.base_url) {
                return Err((
                    key.clone(),
                    format!(
                        "{key}: base_url '{}' must start with http:// or https://",
                        e.base_url
                    ),
                ));
            }
        }
        for alias in &self.cascade.order {
            if !self.models.contains_key(alias) {
                return Err((
                    "cascade.order".into(),
                    format!("cascade.order names '{alias}', which is not a [models.{alias}] entry"),
                ));
            }
        }
        at_least_one(&[("cascade.max_attempts", u64::from(self.cascade.max_attempts))])?;
        if self.cascade.first_token_timeout_secs == 0 || self.cascade.idle_timeout_secs == 0 {
            return Err((
                "cascade".into(),
                "cascade.first_token_timeout_secs and idle_timeout_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn validate_memory(&self) -> Result<(), (String, String)> {
        let m = &self.memory;
        at_least_one(&[
            ("memory.retention_check_secs", m.retention_check_secs),
            ("memory.embed_timeout_ms", m.embed_timeout_ms),
        ])?;
        let e = &self.embeddings;
        if !e.enabled() {
            return Ok(());
        }
        if e.kind == "anthropic" {
            return Err((
                "embeddings.kind".into(),
                "embeddings.kind: Anthropic has no embeddings endpoint; use kind = \"openai\" (OpenAI, Voyage AI, Ollama, llama.cpp and other compatible servers) or \"gemini\"".into(),
            ));
        }
        if !EMBEDDING_KINDS.contains(&e.kind.as_str()) {
            return Err((
                "embeddings.kind".into(),
                format!(
                    "embeddings.kind is '{}'; use {} (or leave it empty for the built-in local embedding only)",
                    e.kind,
                    EMBEDDING_KINDS.join(", ")
                ),
            ));
        }
        if e.model.is_empty() {
            return Err((
                "embeddings.model".into(),
                "embeddings: 'model' is required".into(),
            ));
        }
        if !http_url(&e.base_url) {
            return Err((
                "embeddings.base_url".into(),
                format!(
                    "embeddings.base_url '{}' must start with http:// or https://",
                    e.base_url
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn validate_adapters(&self) -> Result<(), (String, String)> {
        if self.shell.timeout_secs == 0 || self.shell.max_timeout_secs < self.shell.timeout_secs {
            return Err((
                "shell.timeout_secs".into(),
                "shell.timeout_secs must be at least 1 and at most shell.max_timeout_secs".into(),
            ));
        }
        if !http_url(&self.web.search_url) {
            return Err((
                "web.search_url".into(),
                format!(
                    "web.search_url '{}' must start with http:// or https://",
                    self.web.search_url
                ),
            ));
        }
        for a in &self.web.allow_addresses {
            if parse_net(a).is_none() {
                return Err((
                    "web.allow_addresses".into(),
                    format!(
                        "web.allow_addresses: '{a}' is not an IP address or network (like 127.0.0.1 or 10.1.0.0/16)"
                    ),
                ));
            }
        }
        at_least_one(&[("web.timeout_secs", self.web.timeout_secs)])?;
        Ok(())
    }

    pub(super) fn validate_telegram(&self) -> Result<(), (String, String)> {
        let t = &self.telegram;
        let url = t.api_base_url.trim_end_matches('/');
        if !http_url(url) || url.len() < 10 {
            return Err((
                "telegram.api_base_url".into(),
                format!(
                    "telegram.api_base_url is '{}'; give an http(s) URL such as https://api.telegram.org",
                    t.api_base_url
                ),
            ));
        }
        if !(1..=50).contains(&t.poll_timeout_secs) {
            return Err((
                "telegram.poll_timeout_secs".into(),
                "telegram.poll_timeout_secs must be between 1 and 50 (Telegram's limit)".into(),
            ));
        }
        if !["html", "plain"].contains(&t.format.as_str()) {
            return Err((
                "telegram.format".into(),
                format!("telegram.format is '{}'; use html or plain", t.format),
            ));
        }
        at_least_one(&[("telegram.pair_code_minutes", t.pair_code_minutes)])?;
        Ok(())
    }

    pub(super) fn validate_agent(&self) -> Result<(), (String, String)> {
        let a = &self.agent;
        at_least_one(&[
            ("agent.max_react_turns", u64::from(a.max_react_turns)),
            ("agent.tool_timeout_secs", a.tool_timeout_secs),
            ("agent.intent_timeout_secs", a.intent_timeout_secs),
            ("agent.token_budget", a.token_budget),
            (
                "agent.max_concurrent_intents",
                u64::from(a.max_concurrent_intents),
            ),
        ])?;
        for (name, p) in &self.intents.patterns {
            let key = format!("intents.patterns.{name}");
            let fail = |m: String| Err((key.clone(), format!("{key}: {m}")));
            if !p.enabled {
                continue;
            }
            if p.phrases.is_empty() || p.phrases.iter().any(|ph| ph.trim().is_empty()) {
                return fail("'phrases' must list at least one non-empty phrase".into());
            }
            match (p.answer.is_empty(), p.tool.is_empty()) {
                (true, true) | (false, false) => {
                    return fail("set exactly one of 'answer' (a built-in) and 'tool'".into());
                }
                (false, true) if !INTENT_ANSWERS.contains(&p.answer.as_str()) => {
                    return fail(format!(
                        "answer is '{}'; use {}",
                        p.answer,
                        INTENT_ANSWERS.join(", ")
                    ));
                }
                _ => {}
            }
            if !INTENT_RESTS.contains(&p.rest.as_str()) {
                return fail(format!(
                    "rest is '{}'; use {}",
                    p.rest,
                    INTENT_RESTS.join(", ")
                ));
            }
            if !p.tool.is_empty() && p.rest != "none" && p.argument.is_empty() {
                return fail(
                    "a tool pattern with a rest needs 'argument' (the field it fills)".into(),
                );
            }
        }
        Ok(())
    }

    pub(super) fn dependency_cycle(&self) -> Option<Vec<String>> {
        fn visit<'a>(
            c: &'a Config,
            n: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut std::collections::BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(i) = stack.iter().position(|s| *s == n) {
                let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            if done.contains(n) {
                return None;
            }
            stack.push(n);
            for d in c
                .services
                .get(n)
                .map(|s| s.depends_on.as_slice())
                .unwrap_or_default()
            {
                if let Some(cycle) = visit(c, d, stack, done) {
                    return Some(cycle);
                }
            }
            stack.pop();
            done.insert(n);
            None
        }
        let mut done = std::collections::BTreeSet::new();
        for name in self.services.keys() {
            if let Some(c) = visit(self, name, &mut Vec::new(), &mut done) {
                return Some(c);
            }
        }
        None
    }
}

/// The first of `fields` (key path, value) that is 0, as an error.
fn at_least_one(fields: &[(&str, u64)]) -> Result<(), (String, String)> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err((key.to_string(), format!("{key} must be at least 1"))),
        None => Ok(()),
    }
}

/// Whether `url` is an http or https URL (the scheme only).
fn http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
