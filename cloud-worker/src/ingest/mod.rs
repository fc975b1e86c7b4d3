//! Camera connections: the sans-IO protocol [`session`] of one connection, the tokio [`server`]
//! that runs one task per connection, who a connection's peer is ([`identity`]), and the
//! configured sources the worker connects out to ([`sources`]).

pub mod identity;
pub mod server;
pub mod session;
pub mod sources;
