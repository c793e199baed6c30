pub mod wheel;
