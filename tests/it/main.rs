//! The integration suite: one binary, real parts.

mod helpers;

mod api;
mod init;
mod repository;
