//! End-to-end tests that run the real `openintentd` and `oictl` binaries
//! (built with the test-only `chaos` service).

mod adapters;
mod agent;
mod browser;
mod calendar;
mod calserver;
mod email;
mod feishu;
mod github;
mod limits;
mod llm;
mod mailserver;
mod memory;
mod oictl;
mod sandbox;
mod scheduler;
mod supervisor;
mod support;
mod telegram;
mod vault;
mod webserver;
