//! The rows of `scheduler.db` as the store reads and writes them.

/// A job to insert (checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewJob {
    pub name: String,
    /// Canonical (see `Schedule::canonical`).
    pub schedule: String,
    pub zone: Option<String>,
    pub intent: String,
    /// Empty for `cron:<id>`.
    pub chat: String,
    /// Who made it: `oictl`, or the chat whose agent called `cron_add`
    /// (that chat's tools see and remove only its own jobs).
    pub origin: String,
    pub alias: String,
    pub deliver: Vec<String>,
    pub timeout_secs: u64,
    pub overlap: String,
    pub missed: String,
    pub jitter_secs: u64,
    pub created_ms: i64,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub name: String,
    pub schedule: String,
    pub zone: Option<String>,
    pub intent: String,
    pub chat: String,
    pub origin: String,
    pub alias: String,
    pub deliver: Vec<String>,
    pub timeout_secs: u64,
    pub overlap: String,
    pub missed: String,
    pub jitter_secs: u64,
    pub created_ms: i64,
    /// The last scheduled slot that has a row (the creation time before
    /// the first).
    pub last_slot_ms: i64,
    pub enabled: bool,
    pub disabled_reason: String,
    pub failures: u32,
}

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for the job's previous run to end.
    Queued,
    Running,
    Ran,
    Failed,
    Missed,
    /// Replaced by a newer slot (`cancel_previous`), or cut short by a user.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Ran => "ran",
            Status::Failed => "failed",
            Status::Missed => "missed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A row a wake-up writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRow {
    pub slot_ms: i64,
    /// `schedule`, `catch-up` or `manual`.
    pub trigger: &'static str,
    pub status: Status,
    pub reason: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub status: Status,
    pub reason: String,
    pub duration_ms: i64,
    pub tokens: u64,
    pub model: String,
    pub excerpt: String,
}

/// What happened to one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub job: i64,
    pub slot_ms: i64,
    pub trigger: String,
    /// `queued`, `running`, `ran`, `failed`, `missed`, `cancelled` or
    /// `interrupted`.
    pub status: String,
    pub reason: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    pub tokens: u64,
    pub model: String,
    pub excerpt: String,
    pub deliveries: Vec<DeliveryRow>,
}

/// One answer for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub run: i64,
    pub target: String,
    /// Kept while it is pending.
    pub text: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// The last attempt's error.
    pub detail: String,
    pub attempts: u32,
    pub created_ms: i64,
    pub next_ms: i64,
}
