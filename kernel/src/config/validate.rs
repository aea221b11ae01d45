//! Checks of the kernel's sections beyond their types: groups,
//! dependencies and requirements that exist, and ranges. Each error
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
                            "services.{name}.requires: '{r}' is not 'env:<VARIABLE>', 'secret:<vault secret>' or 'config:<table>'"
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
