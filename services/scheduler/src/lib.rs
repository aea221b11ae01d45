//! The scheduler (issue 20), built in parts: when a job runs
//! ([`schedule`]) and what happens to each slot that comes due
//! ([`slots`]), and where both are kept ([`store`]). The service around
//! them (its timer, delivery, tools and `oictl cron`) comes next; until
//! then nothing runs this crate.

pub mod schedule;
pub mod slots;
pub mod store;
