//! wtmpdbd: the daemon that alone owns the wtmpdb database and answers upstream's varlink
//! interface `org.openSUSE.wtmpdb`, authorizing each caller by the credentials the kernel
//! recorded when it connected (SO_PEERCRED). See the crate's README.

pub mod config;
pub mod interface;
pub mod methods;
pub mod protocol;
pub mod server;
pub mod sys;
