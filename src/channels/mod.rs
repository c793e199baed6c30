//! Channels: delivering what the outbox holds (email over SMTP or into a Maildir, SMS and
//! push over provider HTTP APIs or into JSON-lines files, webhook steps), rendering
//! templates, and the signed tokens of tracked links, the open pixel and unsubscribe links.
//! The only module that names lettre and reqwest.

pub mod tracking;

pub mod render;
