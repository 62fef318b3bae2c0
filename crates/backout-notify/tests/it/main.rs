//! Tests of rendering and of every channel against real receivers: an HTTP server in the test,
//! an aiosmtpd SMTP server, and real `sh` processes.

mod command;
mod common;
mod email;
mod pagerduty;
mod slack;
mod teams;
mod templates;
mod webhook;
