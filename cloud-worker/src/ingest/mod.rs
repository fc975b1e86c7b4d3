//! Camera connections: the sans-IO protocol [`session`] of one connection, and the tokio
//! [`server`] that runs one task per connection.

pub mod server;
pub mod session;
