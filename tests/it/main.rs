//! The integration suite: one binary, real parts.

mod helpers;

mod init;
mod repository;
