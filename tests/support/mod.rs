pub mod smtp;
pub mod store;
