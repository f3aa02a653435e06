//! The integration suite: one binary, real parts.

mod helpers;

mod api;
mod bench;
mod files;
mod init;
mod layers;
mod metrics;
mod monitoring;
mod process;
mod receiver_auth;
mod repository;
mod rollups;
mod secrets;
mod slow_clients;
mod templates;
mod ui;
mod worker;
