//! The integration suite: one binary, real parts.

mod helpers;

mod api;
mod bench;
mod delivery;
mod init;
mod repository;
mod ui;
