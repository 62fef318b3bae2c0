//! Receivers for the tests of every crate that sends something out: a real HTTP/1.1 server
//! ([`HttpSink`]) and a real SMTP server ([`SmtpSink`], aiosmtpd), both on free loopback ports,
//! both recording what reached them so a test can assert on it.
//!
//! One copy for the whole workspace: backout-notify, backout-core and the binary's end-to-end
//! tests used to carry their own receivers, which drifted apart. This crate is a dev-dependency
//! only (`publish = false`); it must not depend on any backout crate, so each of them can use it.

mod http;
mod smtp;

pub use http::{Answer, HttpSink, HttpSinkBuilder, Request, refused_url};
pub use smtp::SmtpSink;

/// rustls with ring, as the binary installs it at the top of `main`: with more than one
/// provider linked, rustls refuses to pick one when a client is built.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
