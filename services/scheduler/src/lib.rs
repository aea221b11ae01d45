//! The scheduler (issue 20), built in parts: when a job runs
//! ([`schedule`]) and what happens to each slot that comes due
//! ([`slots`]). The service around them (its store, timer, tools and
//! `oictl cron`) comes next; until then nothing runs this crate.

pub mod schedule;
pub mod slots;
